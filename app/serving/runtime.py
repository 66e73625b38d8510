"""The inference backend interface: every runtime runs B and B' on a batch and gives the same
answers per image (:data:`OUTPUTS`), and is checked against the reference before it serves."""

from collections.abc import Callable
from typing import Protocol

import numpy as np

import modelstore

OUTPUTS = modelstore.PAIR_OUTPUTS
"""What every runtime returns per image, in this order (the model folder's contract)."""
PairOutputs = modelstore.PairOutputs

PROBE_IMAGES = 64


class Runtime(Protocol):
    """A loaded backend of one model pair."""

    name: str

    def run(self, pixels: np.ndarray) -> PairOutputs:
        """Answers for ``pixels``: float32 (N, H, W, 3) in [0, 1]; safe from several threads."""
        ...

    def close(self) -> None: ...


class RuntimeMismatch(Exception):
    """A backend's answers differ from the reference's; the message says where."""


def probe_images(input_shape: tuple[int, ...], count: int = PROBE_IMAGES) -> np.ndarray:
    """Fixed random images to compare backends on."""
    probe = np.random.default_rng(0).uniform(0, 1, (count, *input_shape))
    return probe.astype(np.float32)


def check_matches(
    candidate: Runtime, reference: Callable[[np.ndarray], PairOutputs], images: np.ndarray
) -> None:
    """Raise :class:`RuntimeMismatch` unless ``candidate`` gives the reference's labels on
    ``images``, and its probabilities within 1e-4."""
    got, expected = candidate.run(images), reference(images)
    for name in OUTPUTS:
        mine, theirs = getattr(got, name), getattr(expected, name)
        if name.endswith("label"):
            differing = int(np.count_nonzero(mine != theirs))
        else:
            differing = int(np.count_nonzero(~np.isclose(mine, theirs, atol=1e-4)))
        if differing:
            raise RuntimeMismatch(
                f"{candidate.name}'s {name} differs from the reference's on {differing} of "
                f"{len(images)} probe images"
            )


class SizeRouted:
    """Small batches to one backend, larger ones to another (each is cheaper in its range)."""

    def __init__(self, small: Runtime, large: Runtime, max_small: int) -> None:
        self.small, self.large, self.max_small = small, large, max_small
        self.name = f"{small.name} (up to {max_small} images) + {large.name}"

    def run(self, pixels: np.ndarray) -> PairOutputs:
        backend = self.small if len(pixels) <= self.max_small else self.large
        return backend.run(pixels)

    def close(self) -> None:
        self.small.close()
        self.large.close()
