"""A served model pair (B, B') with its fused inference graph, loaded from a model folder."""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

import repair
from app.frozen_graph import FrozenGraphMismatch, freeze_checked
from app.images import scale_pixels

log = logging.getLogger(__name__)

CHUNK = 32
"""Most images per graph call: larger batches run as equal chunks, one after another (one
thread here: 4,500 images/s in chunks of 16 to 32, 4,000 in one call of 128)."""

OUTPUTS = ("label", "bad_label", "repaired_label", "confidence")
"""Outputs of the fused graph, in the order of :class:`Classified`'s fields."""


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
    _fused: object = None  # the eager tf.function: the reference the others are checked on
    _frozen: object = None  # an app.frozen_graph.FrozenGraph: what serves TensorFlow's calls
    _onnx: object = None  # an app.onnx_runtime.OnnxPair, or None (TensorFlow only)
    onnx_max_batch: int = 4
    batcher: object = None  # an app.batcher.MicroBatcher, made on first use in the loop

    @property
    def poisoned_label(self) -> int:
        """The N+1-th class: the answer for inputs on which B and B' disagree."""
        return self.num_classes

    @property
    def runtime(self) -> str:
        return "onnxruntime+tensorflow" if self._onnx is not None else "tensorflow"

    def classify(self, batch: np.ndarray) -> Classified:
        """Run B and B' on ``batch`` (N, H, W, 3), float32 in [0, 1] or uint8 (the
        service's, scaled here, off the event loop), in the calling thread: ``INFER_THREADS``
        (1 by default) per call, so that two batcher threads use two cores. Measured here:
        ONNX Runtime is cheapest up to about 4 images, TensorFlow's frozen graph above, in
        chunks of at most ``CHUNK`` images."""
        if batch.dtype == np.uint8:
            batch = scale_pixels(batch)
        if self._onnx is not None and len(batch) <= self.onnx_max_batch:
            return Classified(*self._onnx.run(batch))
        if len(batch) <= CHUNK:
            return Classified(*self._frozen.run(batch))
        chunks = np.array_split(batch, -(-len(batch) // CHUNK))
        results = [self._frozen.run(chunk) for chunk in chunks]
        return Classified(*(np.concatenate(outputs) for outputs in zip(*results, strict=True)))

    def close(self) -> None:
        """Close the session (the pair has been swapped out and is idle)."""
        self._frozen.close()

    def describe(self) -> dict:
        """What GET /models says about this pair."""
        return {
            "name": self.name,
            "version": self.version,
            "num_classes": self.num_classes,
            "poisoned_label": self.poisoned_label,
            "input_shape": list(self.input_shape),
            "runtime": self.runtime,
            "metrics": self.manifest.get("metrics"),
        }


def load_pair(
    folder: Path,
    name: str | None = None,
    runtime: str = "auto",
    onnx_max_batch: int = 4,
    threads: int = 1,
) -> ModelPair:
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
    fused = _fuse(bad, rep, num_classes, input_shape)
    try:
        frozen = freeze_checked(fused, input_shape, OUTPUTS, OUTPUTS[:3], threads)
    except FrozenGraphMismatch as exc:
        raise PairRefused(f"{folder}: {exc}") from exc
    onnx = None
    if runtime in ("auto", "onnx"):
        from app.onnx_runtime import OnnxUnavailable, convert_checked

        try:
            onnx = convert_checked(fused, input_shape, threads)
        except OnnxUnavailable as exc:
            if runtime == "onnx":
                raise PairRefused(f"{folder}: ONNX Runtime requested but {exc}") from exc
            log.warning("%s: serving with TensorFlow only: %s", folder, exc)
    return ModelPair(
        name=name or folder.name,
        version=str(version),
        folder=resolved,
        num_classes=num_classes,
        input_shape=input_shape,  # type: ignore[arg-type]
        manifest=manifest,
        _fused=fused,
        _frozen=frozen,
        _onnx=onnx,
        onnx_max_batch=onnx_max_batch,
    )


def configure_tensorflow_threads(threads: int) -> bool:
    """Ops on ``threads`` threads (intra-op), and eager calls one op at a time (inter-op
    1: otherwise TensorFlow runs B and B' in parallel, taking the event loop's core).
    Returns False, pools unchanged, when TensorFlow has already started (they are fixed
    from then on). Served calls run in their own thread (see :mod:`app.frozen_graph`)."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError as exc:
        log.warning("TensorFlow thread pools already set, left as they are: %s", exc)
        return False
    return True


def _fuse(bad, repaired, num_classes: int, input_shape: tuple) -> object:  # noqa: ANN001
    """One ``tf.function`` running both models and the filter rule on the same batch."""

    @tf.function(input_signature=[tf.TensorSpec((None, *input_shape), tf.float32, name="images")])
    def fused(images: tf.Tensor) -> dict[str, tf.Tensor]:
        bad_scores = bad(images, training=False)
        repaired_scores = repaired(images, training=False)
        bad_label = tf.argmax(bad_scores, axis=1, output_type=tf.int32)
        repaired_label = tf.argmax(repaired_scores, axis=1, output_type=tf.int32)
        return {
            "label": tf.where(bad_label == repaired_label, bad_label, num_classes),
            "bad_label": bad_label,
            "repaired_label": repaired_label,
            "confidence": tf.reduce_max(bad_scores, axis=1),
        }

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
