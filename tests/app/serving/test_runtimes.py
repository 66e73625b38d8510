"""Every runtime gives the eager reference's answers on real models and images: ONNX Runtime,
TensorFlow's frozen graph (in chunks above CHUNK images), the size-routed pair of them, and
the filter rule on top."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import modelstore
from app.api.schemas import ModelInfo
from app.serving import tensorflow_backend as tfb
from app.serving.pair import LoadOptions, PairRefused, load_pair
from app.serving.runtime import PairOutputs
from repair.data import load_dataset


def _csaw_folder(csaw_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "csaw_pair"
    folder.mkdir()
    (folder / "bad.h5").symlink_to(csaw_dir / "models" / "sunglasses_bd_weights.h5")
    (folder / "repaired.h5").symlink_to(csaw_dir / "models" / "anonymous_1_bd_weights.h5")
    return folder


def _csaw_rgb(csaw_dir: Path) -> np.ndarray:
    paths = sorted((csaw_dir / "images").glob("*.png"))
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])


def _demo_rgb(root: Path, count: int) -> np.ndarray:
    data = root / "data" / "demo"
    clean = load_dataset(data / "clean_test.h5").x[:count]
    poisoned = load_dataset(data / "poisoned_test_sunglasses.h5").x[:count]
    return np.round(np.concatenate([clean, poisoned])[::-1] * 255).astype(np.uint8)


def _reference(folder: Path, input_shape: tuple[int, ...]) -> tfb.EagerRuntime:
    bad, repaired = tfb.load_models(folder / "bad.h5", folder / "repaired.h5")
    temperature = manifest_temperature(folder)
    return tfb.EagerRuntime(tfb.fuse(bad, repaired, temperature))


def manifest_temperature(folder: Path) -> float:
    manifest = modelstore.read_manifest(folder / "manifest.json")
    return manifest.filter.temperature if manifest else 1.0


def _assert_same(served: PairOutputs, reference: PairOutputs) -> None:
    np.testing.assert_array_equal(served.bad_label, reference.bad_label)
    np.testing.assert_array_equal(served.repaired_label, reference.repaired_label)
    np.testing.assert_allclose(served.confidence, reference.confidence, atol=1e-4)
    np.testing.assert_allclose(served.overlap, reference.overlap, atol=1e-4)
    np.testing.assert_allclose(served.support, reference.support, atol=1e-4)


@pytest.mark.parametrize("runtime", ["onnx", "tf"])
def test_each_runtime_gives_the_reference_answers_on_demo_and_csaw(
    tiny_root: Path, csaw_dir: Path, tmp_path: Path, runtime: str
) -> None:
    """For uint8 and float batches, in one call or (TensorFlow) in chunks."""
    cases = (
        (tiny_root / "models" / "demo", _demo_rgb(tiny_root, 50)),
        (_csaw_folder(csaw_dir, tmp_path), np.resize(_csaw_rgb(csaw_dir), (80, 55, 47, 3))),
    )
    for folder, rgb in cases:
        pair = load_pair(folder, options=LoadOptions(runtime=runtime))
        assert pair.runtime.name == {"onnx": "onnxruntime", "tf": "tensorflow"}[runtime]
        pixels = rgb.astype(np.float32) / np.float32(255.0)
        reference = _reference(pair.folder, pair.input_shape).run(pixels)
        for batch in (pixels, pixels[:63], pixels[: tfb.CHUNK], pixels[:1]):
            _assert_same(pair.runtime.run(batch), _slice(reference, len(batch)))
        answers = pair.classify(rgb)  # uint8, scaled inside
        np.testing.assert_array_equal(answers.bad_label, reference.bad_label)
        pair.close()


def test_auto_sends_small_batches_to_onnx_and_large_ones_to_tensorflow(tiny_root: Path) -> None:
    pair = load_pair(tiny_root / "models" / "demo", options=LoadOptions(onnx_max_batch=4))
    assert pair.runtime.name == "onnxruntime (up to 4 images) + tensorflow"
    rgb = _demo_rgb(tiny_root, 10)
    one_by_one = np.concatenate([pair.classify(rgb[i : i + 1]).label for i in range(len(rgb))])
    np.testing.assert_array_equal(pair.classify(rgb).label, one_by_one)


def test_the_served_rule_decides_the_answer(tiny_root: Path) -> None:
    """Strict: N where the top labels differ, else B's label; calibrated: N where the
    overlap or the support is under the manifest's threshold for it, else B's label, or
    B''s where the two differ and the support is under the overrule threshold."""
    folder = tiny_root / "models" / "demo"
    rgb = _demo_rgb(tiny_root, 50)
    for rule in ("strict", "calibrated", "manifest"):
        pair = load_pair(folder, options=LoadOptions(runtime="tf", filter_rule=rule))
        answers = pair.classify(rgb)
        disagree = answers.bad_label != answers.repaired_label
        unflagged_label = answers.bad_label
        if pair.rule.kind == "strict":
            expected = disagree
        else:
            calibration = pair.manifest.filter.calibrated
            assert pair.rule.threshold == calibration.threshold
            assert pair.rule.support_threshold == calibration.support_threshold is not None
            assert pair.rule.overrule_below == calibration.overrule_below is not None
            expected = (answers.overlap < pair.rule.threshold) | (
                answers.support < pair.rule.support_threshold
            )
            overruled = disagree & (answers.support < pair.rule.overrule_below)
            unflagged_label = np.where(overruled, answers.repaired_label, answers.bad_label)
        np.testing.assert_array_equal(answers.flagged, expected)
        np.testing.assert_array_equal(
            answers.label, np.where(expected, pair.num_classes, unflagged_label)
        )
        assert ModelInfo.of(pair).rule.kind == pair.rule.kind
        pair.close()
    assert load_pair(folder).rule.kind == "calibrated"  # what the demo's manifest recommends


def test_calibrated_rule_without_a_calibration_is_refused(csaw_dir: Path, tmp_path: Path) -> None:
    folder = _csaw_folder(csaw_dir, tmp_path)  # no manifest: strict only
    assert load_pair(folder, options=LoadOptions(runtime="tf")).rule.kind == "strict"
    with pytest.raises(PairRefused, match="FILTER_RULE=calibrated"):
        load_pair(folder, options=LoadOptions(runtime="tf", filter_rule="calibrated"))


def _slice(outputs: PairOutputs, count: int) -> PairOutputs:
    return PairOutputs(
        outputs.bad_label[:count],
        outputs.repaired_label[:count],
        outputs.confidence[:count],
        outputs.overlap[:count],
        outputs.support[:count],
    )
