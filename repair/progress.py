"""Progress bars (tqdm) for long steps, quiet when not on a terminal unless asked."""

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

from repair.keras_env import keras

T = TypeVar("T")


def progress(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Wrap ``items`` in a progress bar on stderr (disabled when stderr is not a terminal)."""
    yield from tqdm(items, desc=description, total=total, disable=not sys.stderr.isatty())


class KerasProgress(keras.callbacks.Callback):
    """One progress bar over the epochs of ``fit``, showing the latest loss and accuracy."""

    def __init__(
        self, description: str, epochs: int, on_epoch: Callable[[int, int], None] | None = None
    ) -> None:
        super().__init__()
        self._bar = tqdm(total=epochs, desc=description, disable=not sys.stderr.isatty())
        self._epochs, self._on_epoch = epochs, on_epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._bar.update(1)
        if self._on_epoch is not None:
            self._on_epoch(epoch + 1, self._epochs)
        if logs:
            self._bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items()})

    def on_train_end(self, logs: dict | None = None) -> None:
        self._bar.close()
