"""The micro-batcher in process (fast tier), on the fake pair served by ONNX Runtime
(tests/support/fake_pair.py): answers per request, failures handed to the batch's requests
without stopping the thread, closing with requests still queued, and a closed batcher."""

import asyncio
import threading
import time

import numpy as np
import pytest

from app.serving.batcher import BatcherClosed, MicroBatcher
from app.serving.pair import Classified, LoadOptions, ModelPair, load_pair
from tests.support.fake_pair import INPUT_SHAPE, write_fake_pair

pytestmark = pytest.mark.fast


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> ModelPair:
    folder = write_fake_pair(tmp_path_factory.mktemp("fake"))
    loaded = load_pair(folder, options=LoadOptions(runtime="onnx"))
    yield loaded
    loaded.close()


def _faces() -> np.ndarray:
    """48 images, half of them flagged by the fake pair, in a random order."""
    levels = np.random.default_rng(0).permutation(np.linspace(1, 255, 48))  # none all black
    return np.broadcast_to(levels[:, None, None, None], (48, *INPUT_SHAPE)).astype(np.uint8)


def test_concurrent_submits_get_their_own_answers_and_failures_stay_in_their_batch(
    pair: ModelPair,
) -> None:
    faces = _faces()
    alone = [pair.classify(faces[i : i + 1]).label[0] for i in range(len(faces))]
    poison_pill = np.zeros(faces.shape[1:], np.uint8)  # a batch holding it fails

    def classify(batch: np.ndarray) -> Classified:
        if any((image == 0).all() for image in batch):
            raise RuntimeError("this batch failed")
        return pair.classify(batch)

    async def scenario() -> None:
        batcher = MicroBatcher(classify, max_batch=16, max_wait_s=0.002)
        # Requests of 1 to 3 faces, all submitted at once: many share a batch.
        sizes = [1, 2, 3] * 8
        starts = np.cumsum([0, *sizes[:-1]])
        answers = await asyncio.gather(
            *(batcher.submit(faces[s : s + n]) for s, n in zip(starts, sizes, strict=True))
        )
        for s, n, answer in zip(starts, sizes, answers, strict=True):
            assert answer.label.tolist() == alone[s : s + n]
        assert batcher.batches < len(sizes)  # they were batched, not run one by one

        with pytest.raises(RuntimeError, match="this batch failed"):
            await batcher.submit(poison_pill[None])
        again = await batcher.submit(faces[:2])  # the thread is still serving
        assert again.label.tolist() == alone[:2]

        # Closing with 40 requests still queued: they are answered, then the thread ends
        # (the stop marker arrives in the middle of gathering the last batch).
        queued = [asyncio.create_task(batcher.submit(faces[i : i + 1])) for i in range(40)]
        await asyncio.sleep(0)  # every submit has queued its request
        await asyncio.wait_for(batcher.close(), timeout=60)
        assert [task.result().label[0] for task in queued] == alone[:40]
        with pytest.raises(BatcherClosed, match="retired"):
            await batcher.submit(faces[:1])

    asyncio.run(scenario())


def test_two_threads_share_a_long_queue_and_take_turns_on_a_short_one(pair: ModelPair) -> None:
    """With ``share_from`` images queued, one thread takes half and an idle one the rest,
    both running at once; below it (and within ``max_batch``), one batch runs at a time
    (no futile small batches)."""
    faces = _faces()
    alone = [pair.classify(faces[i : i + 1]).label[0] for i in range(len(faces))]
    lock = threading.Lock()
    running, most_at_once, calls, threads_seen = 0, 0, 0, set()
    both_in = threading.Barrier(2, timeout=30)  # the first two batches must overlap

    def classify(batch: np.ndarray, wait_for_the_other: bool) -> Classified:
        nonlocal running, most_at_once, calls
        with lock:
            running += 1
            calls += 1
            first_two = calls <= 2
            most_at_once = max(most_at_once, running)
            threads_seen.add(threading.current_thread().name)
        try:
            if wait_for_the_other and first_two:
                both_in.wait()
            else:
                time.sleep(0.02)  # room for an overlap that should not happen
            return pair.classify(batch)
        finally:
            with lock:
                running -= 1

    async def submit_all(batcher: MicroBatcher) -> None:
        answers = await asyncio.gather(*(batcher.submit(faces[i : i + 1]) for i in range(48)))
        assert [answer.label[0] for answer in answers] == alone
        await batcher.close()

    sharing = MicroBatcher(lambda b: classify(b, True), max_batch=64, threads=2, share_from=8)
    asyncio.run(submit_all(sharing))
    assert most_at_once == 2 and len(threads_seen) == 2

    most_at_once, threads_seen = 0, set()
    turns = MicroBatcher(lambda b: classify(b, False), max_batch=64, threads=2, share_from=1000)
    asyncio.run(submit_all(turns))
    assert most_at_once == 1
