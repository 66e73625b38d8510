"""A served model pair (B, B') with its fused inference graph, loaded from a model folder."""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import repair
from repair.keras_env import tf

log = logging.getLogger(__name__)


class PairRefused(Exception):
    """A model folder that must not be served; the message says why."""


@dataclass(frozen=True)
class Classified:
    """Per-image answers of the filter, as arrays of the batch's length."""

    label: np.ndarray
    bad_label: np.ndarray
    repaired_label: np.ndarray
    confidence: np.ndarray


@dataclass
class ModelPair:
    """B and B' of one model folder, fused into one compiled graph."""

    name: str
    version: str
    folder: Path
    num_classes: int
    input_shape: tuple[int, int, int]
    manifest: dict = field(default_factory=dict)
    _fused: object = None
    batcher: object = None  # an app.batcher.MicroBatcher, made on first use in the loop

    @property
    def poisoned_label(self) -> int:
        """The N+1-th class: the answer for inputs on which B and B' disagree."""
        return self.num_classes

    def classify(self, batch: np.ndarray) -> Classified:
        """Run B and B' on ``batch`` (N, H, W, 3) float32 in one graph call."""
        label, bad, rep, confidence = self._fused(tf.constant(batch, dtype=tf.float32))
        return Classified(label.numpy(), bad.numpy(), rep.numpy(), confidence.numpy())

    def describe(self) -> dict:
        """What GET /models says about this pair."""
        return {
            "name": self.name,
            "version": self.version,
            "num_classes": self.num_classes,
            "poisoned_label": self.poisoned_label,
            "input_shape": list(self.input_shape),
            "metrics": self.manifest.get("metrics"),
        }


def load_pair(folder: Path, name: str | None = None) -> ModelPair:
    """Load ``folder``/bad.h5 and repaired.h5, checking them against the manifest.

    Raises :class:`PairRefused` when a file is missing, its hash does not match the
    manifest, or the two models differ in input shape or class count.
    """
    resolved = folder.resolve()
    manifest = _read_manifest(resolved)
    _check_hashes(resolved, manifest)
    models = {}
    for role in ("bad", "repaired"):
        path = resolved / f"{role}.h5"
        if not path.is_file():
            raise PairRefused(f"{folder}: {role}.h5 is missing")
        try:
            models[role] = repair.load_model_file(path)
        except repair.RepairError as exc:
            raise PairRefused(str(exc)) from exc
    bad, rep = models["bad"], models["repaired"]
    if bad.input_shape != rep.input_shape or bad.output_shape != rep.output_shape:
        raise PairRefused(
            f"{folder}: bad.h5 {bad.input_shape}->{bad.output_shape} and repaired.h5 "
            f"{rep.input_shape}->{rep.output_shape} differ in input shape or class count"
        )
    num_classes = int(bad.output_shape[-1])
    input_shape = tuple(int(d) for d in bad.input_shape[1:])
    version = manifest.get("version") or resolved.name
    return ModelPair(
        name=name or folder.name,
        version=str(version),
        folder=resolved,
        num_classes=num_classes,
        input_shape=input_shape,  # type: ignore[arg-type]
        manifest=manifest,
        _fused=_fuse(bad, rep, num_classes, input_shape),
    )


def _fuse(bad, repaired, num_classes: int, input_shape: tuple) -> object:  # noqa: ANN001
    """One ``tf.function`` running both models and the filter rule on the same batch."""

    @tf.function(input_signature=[tf.TensorSpec((None, *input_shape), tf.float32)])
    def fused(batch: tf.Tensor) -> tuple[tf.Tensor, ...]:
        bad_scores = bad(batch, training=False)
        repaired_scores = repaired(batch, training=False)
        bad_label = tf.argmax(bad_scores, axis=1, output_type=tf.int32)
        repaired_label = tf.argmax(repaired_scores, axis=1, output_type=tf.int32)
        label = tf.where(bad_label == repaired_label, bad_label, num_classes)
        return label, bad_label, repaired_label, tf.reduce_max(bad_scores, axis=1)

    fused(tf.zeros((1, *input_shape), tf.float32))  # trace now, not on the first request
    return fused


def _read_manifest(folder: Path) -> dict:
    path = folder / "manifest.json"
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PairRefused(f"{path}: unreadable manifest ({exc})") from exc


def _check_hashes(folder: Path, manifest: dict) -> None:
    for name, expected in (manifest.get("files") or {}).items():
        path = folder / name
        if name.endswith(".h5") and (not path.is_file() or repair.sha256_file(path) != expected):
            raise PairRefused(f"{path}: SHA-256 does not match the manifest (tampered or partial)")
