"""The background task that keeps the served pairs in step with the models folder."""

import asyncio
import logging

from starlette.concurrency import run_in_threadpool

from app.serving import heap
from app.serving.registry import Registry

log = logging.getLogger(__name__)

RETIRE_AFTER_S = 30.0
"""A swapped-out pair is closed this long after the swap (its requests are long done)."""


async def watch_models(registry: Registry, interval_s: float) -> None:
    """Pick up versions published by other processes (another replica's repair, a rollback),
    close retired pairs, and settle the heap after any change (see :mod:`heap`)."""
    settled_at = registry.changes
    while True:
        await asyncio.sleep(interval_s)
        try:
            await run_in_threadpool(registry.refresh)
            retired = await close_retired(registry)
            if retired or registry.changes != settled_at:
                settled_at = registry.changes
                heap.settle()
        except Exception:  # keep watching
            log.exception("model refresh failed")


async def close_retired(registry: Registry, older_than_s: float = RETIRE_AFTER_S) -> int:
    """Stop the batchers of pairs swapped out long ago and release them; return how many."""
    retired = registry.take_retired(older_than_s)
    for pair in retired:
        await pair.stop()
    return len(retired)
