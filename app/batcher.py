"""Dynamic (micro-)batching: concurrent requests share one run of the fused graph.

A lone request runs at once (no added wait). While a batch runs, new requests queue up
and go together in the next run; when requests are still being decoded, the batcher
waits up to ``max_wait_s`` for them, never past ``max_batch`` images.
"""

import asyncio
import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from app.pairs import Classified


@dataclass
class _Pending:
    images: np.ndarray
    future: asyncio.Future


class MicroBatcher:
    """Batches calls to ``classify`` (a blocking function of an (N, H, W, 3) array)."""

    def __init__(
        self,
        classify: Callable[[np.ndarray], Classified],
        max_batch: int = 256,
        max_wait_s: float = 0.002,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._classify = classify
        self._on_batch = on_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="infer")
        self.arriving = 0  # requests that will submit soon (still decoding)
        self.batches = 0
        self.images = 0

    def expect(self) -> None:
        """A request has started decoding and will submit: worth a short wait for it."""
        self.arriving += 1

    def cancel_expectation(self) -> None:
        self.arriving = max(self.arriving - 1, 0)

    async def submit(self, images: np.ndarray) -> Classified:
        """Classify ``images`` (one request's) as part of the next batch."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(images, future))
        return await future

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self._executor.shutdown(wait=False)

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            count = len(batch[0].images)
            deadline = loop.time() + self.max_wait_s
            while count < self.max_batch:
                if not self._queue.empty():
                    item = self._queue.get_nowait()
                elif self.arriving > 0 and loop.time() < deadline:
                    try:
                        item = await asyncio.wait_for(self._queue.get(), deadline - loop.time())
                    except TimeoutError:
                        break
                else:
                    break
                batch.append(item)
                count += len(item.images)
            await self._run_batch(loop, batch)

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        stacked = batch[0].images if len(batch) == 1 else np.concatenate([p.images for p in batch])
        try:
            result = await loop.run_in_executor(self._executor, self._classify, stacked)
        except Exception as exc:  # noqa: BLE001 - handed to every waiting request
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        self.batches += 1
        self.images += len(stacked)
        if self._on_batch is not None:
            self._on_batch(len(stacked))
        start = 0
        for pending in batch:
            end = start + len(pending.images)
            if not pending.future.done():
                pending.future.set_result(_slice(result, start, end))
            start = end


def _slice(result: Classified, start: int, end: int) -> Classified:
    return Classified(
        result.label[start:end],
        result.bad_label[start:end],
        result.repaired_label[start:end],
        result.confidence[start:end],
    )
