"""A served model pair (B, B'): its manifest, its filter rule and its inference runtime."""

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

import modelstore
from app.serving.batcher import MicroBatcher
from app.serving.explain import Explanation, Windows, explain
from app.serving.runtime import PairOutputs, Runtime, RuntimeMismatch, SizeRouted

log = logging.getLogger(__name__)


class PairRefused(Exception):
    """A model folder that must not be served; the message says why."""


def model_input(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (any leading shape) as the models' input: float32 in [0, 1]. The service
    scales once per batch, in the inference thread, not per image on the event loop."""
    return rgb.astype(np.float32) / np.float32(255.0)


@dataclass(frozen=True)
class Classified:
    """Per-image answers of the filter, as arrays of the batch's length."""

    label: np.ndarray
    flagged: np.ndarray
    bad_label: np.ndarray
    repaired_label: np.ndarray
    confidence: np.ndarray
    overlap: np.ndarray
    support: np.ndarray

    def __len__(self) -> int:
        return len(self.label)

    @property
    def overruled(self) -> np.ndarray:
        """Unflagged images answered with B''s label instead of B's."""
        return ~self.flagged & (self.label != self.bad_label)

    def __getitem__(self, part: slice) -> "Classified":
        return Classified(
            self.label[part],
            self.flagged[part],
            self.bad_label[part],
            self.repaired_label[part],
            self.confidence[part],
            self.overlap[part],
            self.support[part],
        )


@dataclass(frozen=True)
class LoadOptions:
    """How every pair is loaded (from the service's settings)."""

    runtime: Literal["auto", "tf", "onnx"] = "auto"
    onnx_max_batch: int = 4
    threads: int = 1
    filter_rule: Literal["manifest", "calibrated", "strict"] = "manifest"


@dataclass
class ModelPair:
    """B and B' of one model folder, behind one runtime."""

    name: str
    version: str
    folder: Path
    num_classes: int
    input_shape: tuple[int, int, int]
    manifest: modelstore.Manifest | None
    rule: modelstore.RuleSpec
    """The rule that answers N: the manifest's, or the one ``FILTER_RULE`` names."""
    runtime: Runtime
    batcher: MicroBatcher | None = None
    """Joins concurrent requests into batches; the registry gives each served pair one."""

    @property
    def poisoned_label(self) -> int:
        """The N+1-th class: the answer for inputs the filter flags."""
        return self.num_classes

    def classify(self, batch: np.ndarray) -> Classified:
        """The filter's answers for ``batch`` (N, H, W, 3): float32 in [0, 1], or uint8 (the
        service's, scaled here in the inference thread, off the event loop)."""
        if batch.dtype == np.uint8:
            batch = model_input(batch)
        outputs = self.runtime.run(batch)
        label = self.rule.answers(outputs, self.poisoned_label)
        return Classified(
            label,
            label == self.poisoned_label,
            outputs.bad_label,
            outputs.repaired_label,
            outputs.confidence,
            outputs.overlap,
            outputs.support,
        )

    @functools.cached_property
    def windows(self) -> Windows:
        """The occluding windows that explain this pair's flags (its input size's)."""
        return Windows.for_size(*self.input_shape[:2])

    def explain(
        self, rgb: np.ndarray, result: Classified, chosen: np.ndarray
    ) -> dict[int, Explanation]:
        """Occlusion heat maps of the ``chosen`` images of a classified uint8 batch, by
        index: one more batch through the runtime, 64 windows per image on a face crop."""
        index = np.flatnonzero(chosen)
        original = PairOutputs(
            result.bad_label[index],
            result.repaired_label[index],
            result.confidence[index],
            result.overlap[index],
            result.support[index],
        )
        found = explain(self.runtime.run, model_input(rgb[index]), original, self.windows)
        return dict(zip(index.tolist(), found, strict=True))

    def close(self) -> None:
        """Release the runtime (the pair has been swapped out and is idle)."""
        self.runtime.close()

    async def stop(self) -> None:
        """Answer the requests queued in its batcher, stop the batcher's threads, then
        release the runtime."""
        if self.batcher is not None:
            await self.batcher.close()
        self.close()


def load_pair(
    folder: modelstore.ModelFolder | Path,
    name: str | None = None,
    options: LoadOptions | None = None,
) -> ModelPair:
    """Load a model folder's pair, checking its files against the manifest.

    ``RUNTIME=onnx`` with a published ``pair.onnx`` needs no TensorFlow: the repair checked
    the export against Keras and the manifest holds its hash. Otherwise the Keras files
    are loaded and every runtime is checked against the eager TensorFlow reference.

    Raises :class:`PairRefused` when a file is missing or does not match the manifest's
    hash, the two nets differ in input shape or class count, the rule asked for cannot be
    served, or a runtime answers differently from the reference.
    """
    options = options or LoadOptions()
    if isinstance(folder, Path):
        folder = modelstore.ModelFolder(folder)
    resolved = modelstore.ModelFolder(folder.path.resolve())
    try:
        manifest = modelstore.read_manifest(resolved.manifest)
    except modelstore.ManifestError as exc:
        raise PairRefused(str(exc)) from exc
    _check_hashes(resolved, manifest)
    rule = _served_rule(folder, manifest, options.filter_rule)
    exported = manifest is not None and modelstore.PAIR_ONNX in manifest.files
    if options.runtime == "onnx" and exported:
        runtime = _published_onnx(resolved, manifest, options)
        num_classes, input_shape = manifest.num_classes, tuple(manifest.input_shape)
    else:
        temperature = manifest.filter.temperature if manifest else 1.0
        runtime, num_classes, input_shape = _from_keras(
            resolved, folder, options, exported, temperature
        )
    return ModelPair(
        name=name or folder.name,
        version=manifest.version if manifest else resolved.path.name,
        folder=resolved.path,
        num_classes=num_classes,
        input_shape=input_shape,  # type: ignore[arg-type]
        manifest=manifest,
        rule=rule,
        runtime=runtime,
    )


def _published_onnx(
    folder: modelstore.ModelFolder, manifest: modelstore.Manifest, options: LoadOptions
) -> Runtime:
    """The repair's ONNX export, as it was checked and hashed (no TensorFlow needed)."""
    from app.serving.onnx_backend import OnnxRuntime

    try:
        runtime = OnnxRuntime(folder.pair_onnx.read_bytes(), options.threads)
        probe = np.zeros((1, *manifest.input_shape), np.float32)
        runtime.run(probe)
    except Exception as exc:  # any session or shape failure refuses the pair
        raise PairRefused(f"{folder.pair_onnx}: ONNX Runtime cannot serve it: {exc}") from exc
    return runtime


def _from_keras(
    resolved: modelstore.ModelFolder,
    folder: modelstore.ModelFolder,
    options: LoadOptions,
    exported: bool,
    temperature: float,
) -> tuple[Runtime, int, tuple[int, ...]]:
    """B and B' from their Keras files, behind the runtimes the settings ask for."""
    try:
        from app.serving import tensorflow_backend as tfb
    except ImportError as exc:
        raise PairRefused(
            f"{folder.path}: needs TensorFlow ({exc}); this image serves only folders with a "
            f"published {modelstore.PAIR_ONNX} (RUNTIME=onnx)"
        ) from exc
    import repair

    for path in (resolved.bad_model, resolved.repaired_model):
        if not path.is_file():
            raise PairRefused(f"{folder.path}: {path.name} is missing")
    try:
        bad, repaired = tfb.load_models(resolved.bad_model, resolved.repaired_model)
    except repair.RepairError as exc:
        raise PairRefused(str(exc)) from exc
    if bad.input_shape != repaired.input_shape or bad.output_shape != repaired.output_shape:
        raise PairRefused(
            f"{folder.path}: {modelstore.BAD_MODEL} {bad.input_shape}->{bad.output_shape} and "
            f"{modelstore.REPAIRED_MODEL} {repaired.input_shape}->{repaired.output_shape} "
            "differ in input shape or class count"
        )
    num_classes = int(bad.output_shape[-1])
    input_shape = tuple(int(d) for d in bad.input_shape[1:])
    onnx_model = resolved.pair_onnx.read_bytes() if exported else None
    fused = tfb.fuse(bad, repaired, temperature)
    runtime = _runtime(tfb, fused, input_shape, options, folder, onnx_model)
    return runtime, num_classes, input_shape


def _runtime(tfb, fused, input_shape, options, folder, onnx_model) -> Runtime:
    """The backend(s) the settings ask for, each checked against the eager reference."""
    from app.serving.onnx_backend import OnnxRuntime
    from app.serving.runtime import check_matches, probe_images

    reference = tfb.EagerRuntime(fused).run
    probe = probe_images(input_shape)
    tensorflow = None
    if options.runtime in ("auto", "tf"):
        tensorflow = tfb.FrozenGraphRuntime(fused, options.threads)
        try:
            check_matches(tensorflow, reference, probe)
        except RuntimeMismatch as exc:
            tensorflow.close()
            raise PairRefused(f"{folder.path}: {exc}") from exc
        if options.runtime == "tf" or options.onnx_max_batch == 0:
            return tensorflow
    try:
        onnx = OnnxRuntime(onnx_model or tfb.to_onnx(fused), options.threads)
        check_matches(onnx, reference, probe)
    except Exception as exc:  # conversion or session failure, or a mismatch
        if options.runtime == "onnx":
            raise PairRefused(f"{folder.path}: ONNX Runtime cannot serve this pair: {exc}") from exc
        log.warning("%s: serving with TensorFlow only: %s", folder.path, exc)
        return tensorflow
    if tensorflow is None:
        return onnx
    return SizeRouted(onnx, tensorflow, options.onnx_max_batch)


def _served_rule(
    folder: modelstore.ModelFolder, manifest: modelstore.Manifest | None, asked: str
) -> modelstore.RuleSpec:
    """The rule ``FILTER_RULE`` asks for: the manifest's own (strict without a manifest),
    or the one named, which for ``calibrated`` needs the manifest's threshold."""
    spec = manifest.filter if manifest else modelstore.FilterSpec()
    kind = spec.kind if asked == "manifest" else asked
    if kind == "strict":
        return modelstore.RuleSpec(kind="strict")
    calibrated = spec.calibrated_rule()
    if calibrated is None or calibrated.threshold is None:
        raise PairRefused(
            f"{folder.path}: FILTER_RULE=calibrated, but the manifest has no calibrated "
            "threshold (repair the model again, or serve it with FILTER_RULE=strict)"
        )
    return modelstore.RuleSpec(
        **calibrated.model_dump(include=set(modelstore.RuleSpec.model_fields))
    )


def _check_hashes(folder: modelstore.ModelFolder, manifest: modelstore.Manifest | None) -> None:
    for name, expected in (manifest.files if manifest else {}).items():
        path = folder.file(name)
        if not name.endswith((".h5", ".onnx")):
            continue
        if not path.is_file() or modelstore.sha256_file(path) != expected:
            raise PairRefused(f"{path}: SHA-256 does not match the manifest (tampered or partial)")
