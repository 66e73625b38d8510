"""The micro-batcher in process, on the real demo pair: answers per request, failures
handed to the batch's requests without stopping the thread, closing with requests still
queued, and a closed batcher."""

import asyncio
from pathlib import Path

import numpy as np
import pytest

from app.batcher import MicroBatcher
from app.errors import ServiceError
from app.pairs import Classified, load_pair
from repair.data import load_dataset


def _faces(demo_root: Path) -> np.ndarray:
    data = demo_root / "data" / "demo"
    clean = load_dataset(data / "clean_test.h5").x[:24]
    poisoned = load_dataset(data / "poisoned_test_sunglasses.h5").x[:24]
    mixed = np.concatenate([clean, poisoned])[np.random.default_rng(0).permutation(48)]
    return np.round(mixed * 255).astype(np.uint8)


def test_concurrent_submits_get_their_own_answers_and_failures_stay_in_their_batch(
    demo_root: Path,
) -> None:
    pair = load_pair(demo_root / "models" / "demo")
    faces = _faces(demo_root)
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
        with pytest.raises(ServiceError) as refused:
            await batcher.submit(faces[:1])
        assert refused.value.status == 503

    asyncio.run(scenario())
    pair.close()
