"""The set of served pairs (the model repository), reloaded when a model folder points at
a new version."""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import modelstore
from app.serving.batcher import MicroBatcher
from app.serving.pair import Classified, LoadOptions, ModelPair, PairRefused, load_pair

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchOptions:
    """How each served pair's batcher joins requests (from the service's settings)."""

    max_batch: int = 256
    max_wait_s: float = 0.002
    threads: int = 2
    share_from: int = 64


BatchObserver = Callable[[ModelPair], Callable[[Classified], None]]
"""Given a pair, what its batcher calls with each batch's answers (the service's metrics)."""


class Registry:
    """Name -> :class:`ModelPair`. Swapping a pair is one dict assignment: requests that
    already hold the old pair finish on it, new requests get the new one."""

    def __init__(
        self,
        models_dir: Path,
        default_model: str | None = None,
        load_options: LoadOptions | None = None,
        batch_options: BatchOptions | None = None,
        observe_batches: BatchObserver | None = None,
    ) -> None:
        self.models_dir = models_dir
        self._load_options = load_options or LoadOptions()
        self._batch_options = batch_options or BatchOptions()
        self._observe_batches = observe_batches
        self.default_model = default_model
        self._pairs: dict[str, ModelPair] = {}
        self._seen: dict[str, tuple] = {}  # name -> identity of the folder last tried
        self.refused: dict[str, str] = {}
        self._retired: list[tuple[float, ModelPair]] = []
        self._lock = threading.Lock()
        self.changes = 0  # pairs loaded or removed so far (the heap is settled after each)

    def pairs(self) -> dict[str, ModelPair]:
        """A snapshot of the served pairs."""
        return dict(self._pairs)

    def get(self, name: str | None) -> ModelPair | None:
        """The named pair, or the default one (``DEFAULT_MODEL``, or the only one)."""
        pairs = self._pairs
        if name is None:
            if self.default_model is not None:
                name = self.default_model
            elif len(pairs) == 1:
                return next(iter(pairs.values()))
            else:
                return None
        return pairs.get(name)

    def refresh(self) -> list[str]:
        """Load folders that are new or point at a new version; return the names changed."""
        with self._lock:
            changed = []
            present = modelstore.model_folders(self.models_dir)
            for name, folder in present.items():
                identity = folder.identity()
                if self._seen.get(name) == identity:
                    continue
                self._seen[name] = identity
                try:
                    pair = self._load(folder, name)
                except PairRefused as exc:
                    self.refused[name] = str(exc)
                    log.warning("model %s refused: %s", name, exc)
                    continue
                except Exception as exc:  # a broken file must not stop the others
                    self.refused[name] = f"{type(exc).__name__}: {exc}"
                    log.exception("model %s failed to load", name)
                    continue
                self.refused.pop(name, None)
                if name in self._pairs:
                    self._retired.append((time.monotonic(), self._pairs[name]))
                self._pairs = {**self._pairs, name: pair}
                self.changes += 1
                changed.append(name)
                log.info("serving model %s version %s", name, pair.version)
            for name in set(self._pairs) - set(present):
                self._retired.append((time.monotonic(), self._pairs[name]))
                self._pairs = {k: v for k, v in self._pairs.items() if k != name}
                self._seen.pop(name, None)
                self.changes += 1
                log.info("model %s removed", name)
            return changed

    def _load(self, folder: modelstore.ModelFolder, name: str) -> ModelPair:
        """A pair and its batcher (whose threads start on its first request)."""
        pair = load_pair(folder, name, self._load_options)
        batching = self._batch_options
        pair.batcher = MicroBatcher(
            pair.classify,
            batching.max_batch,
            batching.max_wait_s,
            on_batch=self._observe_batches(pair) if self._observe_batches else None,
            threads=batching.threads,
            share_from=batching.share_from,
        )
        return pair

    async def close(self) -> None:
        """At shutdown: stop every pair, served or retired (their queued requests answered)."""
        with self._lock:
            pairs = [*self._pairs.values(), *(pair for _, pair in self._retired)]
            self._pairs, self._retired = {}, []
        for pair in pairs:
            await pair.stop()

    def take_retired(self, older_than_s: float) -> list[ModelPair]:
        """Pairs swapped out more than ``older_than_s`` ago, removed from the list."""
        with self._lock:
            now = time.monotonic()
            old = [pair for when, pair in self._retired if now - when >= older_than_s]
            self._retired = [(w, p) for w, p in self._retired if now - w < older_than_s]
            return old
