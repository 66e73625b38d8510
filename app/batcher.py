"""Dynamic (micro-)batching: concurrent requests share one run of the fused graph.

Requests go into a thread-safe queue; one inference thread takes everything queued (up to
``max_batch`` images) as soon as its previous batch is done, so it never waits for the
event loop to hand it work. A lone request runs at once (no added wait); while requests
are still being decoded, the thread waits up to ``max_wait_s`` for them. Each request
comes already stacked, so the thread joins a few arrays, not many images: Python work in
this thread waits for the GIL behind the event loop and the decoders (measured: stacking
128 single images here took 5.6 ms a batch under load, a quarter of the batch's time).
Answers go back to the event loop in one callback per batch.
"""

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from app.errors import ServiceError
from app.pairs import Classified


@dataclass
class _Pending:
    images: np.ndarray  # (N, H, W, 3): one request's images
    future: asyncio.Future


_STOP = object()  # queued by close(): the thread ends once it gets here


class MicroBatcher:
    """Batches calls to ``classify`` (a blocking function of an (N, H, W, 3) array)."""

    def __init__(
        self,
        classify: Callable[[np.ndarray], Classified],
        max_batch: int = 256,
        max_wait_s: float = 0.002,
        on_batch: Callable[[Classified], None] | None = None,
    ) -> None:
        self._classify = classify
        self._on_batch = on_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._queue: queue.SimpleQueue[_Pending | object] = queue.SimpleQueue()
        self._carried: _Pending | object | None = None  # starts the next batch (or ends it)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self.arriving = 0  # requests that will submit soon (still decoding)
        self.batches = 0
        self.images = 0

    def expect(self) -> None:
        """A request has started decoding and will submit: worth a short wait for it."""
        self.arriving += 1

    def cancel_expectation(self) -> None:
        self.arriving = max(self.arriving - 1, 0)

    async def submit(self, images: np.ndarray) -> Classified:
        """Classify ``images`` (one request's, (N, H, W, 3)) as part of the next batch.
        Raises :class:`ServiceError` 503 once the batcher is closed (its pair retired)."""
        if self._closed:
            raise ServiceError(503, "this model version has been retired; send the request again")
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._run, name="infer", daemon=True)
            self._thread.start()
        future = self._loop.create_future()  # type: ignore[union-attr]
        self._queue.put(_Pending(images, future))
        return await future

    async def close(self) -> None:
        """Answer the requests queued so far, then stop the inference thread; returns once
        it has stopped (so the pair's sessions can be closed after)."""
        self._closed = True
        self._queue.put(_STOP)
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)

    def _run(self) -> None:
        while (batch := self._gather()) is not None:
            self._run_batch(batch)

    def _gather(self) -> list[_Pending] | None:
        """The next batch: what is queued, and what arrives within the wait (None: closed)."""
        first = self._carried if self._carried is not None else self._queue.get()
        self._carried = None
        if first is _STOP:
            return None
        assert isinstance(first, _Pending)
        batch, count = [first], len(first.images)
        deadline = time.monotonic() + self.max_wait_s
        while count < self.max_batch:
            try:
                if self.arriving > 0 and (left := deadline - time.monotonic()) > 0:
                    item = self._queue.get(timeout=left)
                else:
                    item = self._queue.get_nowait()
            except queue.Empty:
                break
            if not isinstance(item, _Pending) or count + len(item.images) > self.max_batch:
                self._carried = item  # starts the next batch (or ends the thread)
                break
            batch.append(item)
            count += len(item.images)
        return batch

    def _run_batch(self, batch: list[_Pending]) -> None:
        assert self._loop is not None
        try:  # nothing may end the thread: every failure goes to the batch's requests
            stacked = np.concatenate([pending.images for pending in batch])
            result = self._classify(stacked)
            if self._on_batch is not None:
                self._on_batch(result)
        except Exception as exc:  # noqa: BLE001 - handed to every waiting request
            self._loop.call_soon_threadsafe(_fail, batch, exc)
            return
        self.batches += 1
        self.images += len(stacked)
        self._loop.call_soon_threadsafe(_answer, batch, result)


def _answer(batch: list[_Pending], result: Classified) -> None:
    """On the event loop: give each request its slice of the batch's answers."""
    start = 0
    for pending in batch:
        end = start + len(pending.images)
        if not pending.future.done():  # not cancelled (client gone)
            pending.future.set_result(_slice(result, start, end))
        start = end


def _fail(batch: list[_Pending], exc: Exception) -> None:
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(exc)


def _slice(result: Classified, start: int, end: int) -> Classified:
    return Classified(
        result.label[start:end],
        result.bad_label[start:end],
        result.repaired_label[start:end],
        result.confidence[start:end],
    )
