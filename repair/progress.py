"""Progress for long steps: a tqdm bar on a terminal, and dated lines with an estimate of the
time left everywhere else (CI logs, Docker build logs, ``serve.sh``)."""

import sys
import time
from collections.abc import Callable

from tqdm.auto import tqdm

LINE_EVERY_S = 15.0
"""Without a terminal, a progress line at most this often (and at each new stage)."""


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def _line(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


class StageReporter:
    """Prints each stage of a run and its overall progress, with an estimate of what is left.

    Pass :meth:`stage` as the pipeline's ``on_progress`` callback.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._started: float | None = None  # the first stage starts the clock
        self._stage: str | None = None
        self._printed_at = 0.0

    def stage(self, stage: str, fraction: float) -> None:
        now = time.monotonic()
        if self._started is None:
            self._started = now
        if stage == self._stage and now - self._printed_at < LINE_EVERY_S:
            return
        self._stage, self._printed_at = stage, now
        elapsed = now - self._started
        left = ""
        if 0.05 < fraction < 1:
            left = f", about {_duration(elapsed / fraction * (1 - fraction))} left"
        _line(f"{self._name}: {stage} ({100 * fraction:.0f}%, {_duration(elapsed)}{left})")


class EpochProgress:
    """Progress over the epochs of a training run, with the latest loss."""

    def __init__(
        self, description: str, epochs: int, on_epoch: Callable[[int, int], None] | None = None
    ) -> None:
        self._description, self._epochs, self._on_epoch = description, epochs, on_epoch
        self._terminal = sys.stderr.isatty()
        self._bar = tqdm(total=epochs, desc=description, disable=not self._terminal)
        self._started = time.monotonic()
        self._printed_at = self._started

    def epoch_done(self, done: int, logs: dict | None = None) -> None:
        self._bar.update(1)
        if logs:
            self._bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items()})
        now = time.monotonic()
        if not self._terminal and (now - self._printed_at >= LINE_EVERY_S or done == 1):
            self._printed_at = now
            elapsed = now - self._started
            loss = f", loss {logs['loss']:.3f}" if logs and "loss" in logs else ""
            _line(
                f"  {self._description}: epoch {done}/{self._epochs}{loss} "
                f"({_duration(elapsed)}, about {_duration(elapsed / done * (self._epochs - done))}"
                " left)"
            )
        if self._on_epoch is not None:
            self._on_epoch(done, self._epochs)

    def close(self) -> None:
        self._bar.close()
        if not self._terminal:
            _line(f"  {self._description}: done in {_duration(time.monotonic() - self._started)}")


def keras_progress(
    description: str, epochs: int, on_epoch: Callable[[int, int], None] | None = None
):  # a keras Callback, whose class needs TensorFlow loaded
    """An :class:`EpochProgress` as a Keras callback for ``fit``."""
    from repair.keras_env import keras

    class ProgressCallback(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.progress = EpochProgress(description, epochs, on_epoch)
            self.done = 0

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.done = epoch + 1
            self.progress.epoch_done(self.done, logs)

        def on_train_end(self, logs: dict | None = None) -> None:
            if self.done >= epochs:  # a run may be several ``fit`` calls, one per round
                self.progress.close()

    return ProgressCallback()
