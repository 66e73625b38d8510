"""Dynamic (micro-)batching: concurrent requests share one run of the fused graph.

Requests wait in a queue for ``threads`` inference threads (one per core by default). A
free thread takes what is queued, up to ``max_batch`` images, as soon as its last batch
is done, so it never waits for the event loop to hand it work; when another thread is
idle and at least ``share_from`` images are queued, it takes only half of them and wakes
that thread for the rest. Each thread runs its batch on one core and answers it with one
callback on the event loop. A lone request runs at once (no added wait); while requests
are still being decoded, a thread waits up to ``max_wait_s`` for them.

Why threads that each run whole batches, rather than one thread whose batches are split
between two calls: everything a thread does between graph calls (joining requests, the
answers) needs the GIL, which the event loop and the decoders hold much of the time, so
it took a quarter of each batch's time here; with two such threads one prepares while the
other computes. Each request comes already stacked, so a thread joins a few arrays, not
many images.
"""

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class Batchable(Protocol):
    """A batch's answers: sized, and sliced per request (``answers[start:end]``)."""

    def __len__(self) -> int: ...

    def __getitem__(self, part: slice) -> Any: ...


class BatcherClosed(Exception):
    """The batcher was closed (its model version retired): the request should be resent."""


@dataclass
class _Pending:
    images: np.ndarray  # (N, H, W, 3): one request's images
    future: asyncio.Future


class MicroBatcher:
    """Batches calls to ``classify`` (a blocking function of an (N, H, W, 3) array that
    returns one answer per image, sliceable per request)."""

    def __init__(
        self,
        classify: Callable[[np.ndarray], Batchable],
        max_batch: int = 256,
        max_wait_s: float = 0.002,
        on_batch: Callable[[Batchable], None] | None = None,
        threads: int = 2,
        share_from: int = 64,
    ) -> None:
        self._classify = classify
        self._on_batch = on_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.thread_count = max(1, threads)
        self.share_from = share_from
        self._lock = threading.Lock()  # guards everything below up to _stopping
        self._work = threading.Condition(self._lock)  # idle threads wait here
        self._more = threading.Condition(self._lock)  # a thread waiting for arrivals
        self._pending: deque[_Pending] = deque()
        self._pending_images = 0
        self._idle = 0  # threads waiting for work
        self._busy = 0  # threads running a batch
        self._waiting_for_arrivals = False
        self._handed_over = False  # work left queued for the next free thread to take
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []
        self._closed = False
        self.arriving = 0  # requests that will submit soon (still decoding)
        self.batches = 0
        self.images = 0

    @property
    def running(self) -> bool:
        """Whether any of its inference threads is alive."""
        return any(thread.is_alive() for thread in self._threads)

    def expect(self) -> None:
        """A request has started decoding and will submit: worth a short wait for it."""
        self.arriving += 1

    def cancel_expectation(self) -> None:
        self.arriving = max(self.arriving - 1, 0)

    async def submit(self, images: np.ndarray) -> Any:
        """Classify ``images`` (one request's, (N, H, W, 3)) as part of the next batch.
        Raises :class:`BatcherClosed` once the batcher is closed (its pair retired)."""
        if self._closed:
            raise BatcherClosed("this model version has been retired; send the request again")
        if not self._threads:
            self._start()
        future = self._loop.create_future()  # type: ignore[union-attr]
        with self._lock:
            self._pending.append(_Pending(images, future))
            self._pending_images += len(images)
            if self._waiting_for_arrivals:
                self._more.notify()
            elif self._idle and self._may_start():
                self._work.notify()  # only when a thread should start: no futile wake-ups
        return await future

    async def close(self) -> None:
        """Answer the requests queued so far, then stop the inference threads; returns once
        they have stopped (so the pair's sessions can be closed after)."""
        self._closed = True
        with self._lock:
            self._stopping = True
            self._work.notify_all()
            self._more.notify_all()
        loop = asyncio.get_running_loop()
        for thread in self._threads:
            await loop.run_in_executor(None, thread.join)

    def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for index in range(self.thread_count):
            thread = threading.Thread(target=self._run, name=f"infer-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self) -> None:
        while (batch := self._gather()) is not None:
            try:
                self._run_batch(batch)
            finally:
                with self._lock:
                    self._busy -= 1

    def _may_start(self) -> bool:
        """Whether a free thread should start a batch now (called holding the lock): work is
        queued and no thread is busy, or there is enough to share, or it was handed over."""
        return bool(self._pending) and (
            self._busy == 0
            or self._handed_over
            or self._stopping
            or self._pending_images >= self.share_from
        )

    def _gather(self) -> list[_Pending] | None:
        """The next batch for this thread (None: closed and nothing left)."""
        with self._lock:
            while not self._may_start():
                if self._stopping and not self._pending:
                    return None
                self._idle += 1
                self._work.wait()
                self._idle -= 1
            batch, count = self._take([], 0)
            if not self._waiting_for_arrivals:
                deadline = time.monotonic() + self.max_wait_s
                self._waiting_for_arrivals = True
                while not self._pending and self.arriving > 0 and not self._stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._more.wait(left)
                    batch, count = self._take(batch, count)
                self._waiting_for_arrivals = False
            # Anything still queued did not fit: the next free thread takes it at once.
            self._handed_over = bool(self._pending)
            if self._handed_over and self._idle:
                self._work.notify()
            self._busy += 1
            return batch

    def _take(self, batch: list[_Pending], count: int) -> tuple[list[_Pending], int]:
        """Move queued requests into ``batch`` while they fit (called holding the lock):
        up to ``max_batch`` images, or about half of ``share_from`` or more, so that
        another thread runs the other half at the same time."""
        limit = self.max_batch
        if self.thread_count > 1 and self._pending_images + count >= self.share_from:
            limit = min(limit, (self._pending_images + count + 1) // 2)
        while self._pending:
            size = len(self._pending[0].images)
            if batch and count + size > limit:
                break
            batch.append(self._pending.popleft())
            self._pending_images -= size
            count += size
        return batch, count

    def _run_batch(self, batch: list[_Pending]) -> None:
        assert self._loop is not None
        try:  # nothing may end the thread: every failure goes to the batch's requests
            stacked = np.concatenate([pending.images for pending in batch])
            result = self._classify(stacked)
            if self._on_batch is not None:
                self._on_batch(result)
        except Exception as exc:  # handed to every waiting request
            self._loop.call_soon_threadsafe(_fail, batch, exc)
            return
        with self._lock:
            self.batches += 1
            self.images += len(stacked)
        self._loop.call_soon_threadsafe(_answer, batch, result)


def _answer(batch: list[_Pending], result: Batchable) -> None:
    """On the event loop: give each request its slice of the batch's answers."""
    start = 0
    for pending in batch:
        end = start + len(pending.images)
        if not pending.future.done():  # not cancelled (client gone)
            pending.future.set_result(result[start:end])
        start = end


def _fail(batch: list[_Pending], exc: Exception) -> None:
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(exc)
