"""Model folders the service must refuse, and pick-up of new versions, on real models."""

import shutil
from pathlib import Path

import pytest

from app.registry import Registry
from repair.publish import publish, staging_folder


def _copy_demo(demo_root: Path, target: Path) -> None:
    shutil.copytree((demo_root / "models" / "demo").resolve(), target)


def test_tampered_and_mismatched_folders_are_refused_others_serve(
    demo_root: Path, csaw_dir: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    _copy_demo(demo_root, models / "good")
    _copy_demo(demo_root, models / "tampered")
    with open(models / "tampered" / "repaired.h5", "ab") as handle:
        handle.write(b"\0")  # one byte more: no longer the file the manifest hashed
    (models / "mismatch").mkdir()
    shutil.copy(models / "good" / "bad.h5", models / "mismatch" / "bad.h5")  # 200 classes
    (models / "mismatch" / "repaired.h5").symlink_to(
        csaw_dir / "models" / "sunglasses_bd_weights.h5"  # 1283 classes
    )
    (models / "not_a_model").mkdir()
    (models / "not_a_model" / "bad.h5").write_text("text")
    (models / "not_a_model" / "repaired.h5").write_text("text")

    registry = Registry(models)
    registry.refresh()
    assert sorted(registry.pairs()) == ["good"]
    assert "SHA-256" in registry.refused["tampered"]
    assert "differ in input shape or class count" in registry.refused["mismatch"]
    assert "not an HDF5 file" in registry.refused["not_a_model"]


def test_new_version_is_picked_up_and_missing_folder_dropped(
    demo_root: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    staging = staging_folder(models / "demo")
    shutil.rmtree(staging)
    _copy_demo(demo_root, staging)
    publish(staging, models / "demo", "v1")
    registry = Registry(models)
    assert registry.refresh() == ["demo"]
    assert registry.refresh() == []  # nothing changed
    staging = staging_folder(models / "demo")
    shutil.rmtree(staging)
    _copy_demo(demo_root, staging)
    publish(staging, models / "demo", "v2")
    assert registry.refresh() == ["demo"]
    assert registry.get(None) is registry.pairs()["demo"]
    (models / "demo").unlink()
    registry.refresh()
    assert registry.pairs() == {}


@pytest.mark.parametrize("name", [None, "demo"])
def test_default_model_choice(demo_root: Path, tmp_path: Path, name: str | None) -> None:
    models = tmp_path / "models"
    _copy_demo(demo_root, models / "demo")
    registry = Registry(models, default_model=name)
    registry.refresh()
    assert registry.get(None).name == "demo"


def test_onnx_runtime_matches_tensorflow_on_demo_and_csaw(
    demo_root: Path, csaw_dir: Path, tmp_path: Path
) -> None:
    """Both runtimes give the same labels on real images (ONNX serves batches <= 16)."""
    import numpy as np
    from PIL import Image

    from app.pairs import load_pair
    from repair.data import load_dataset
    from repair.keras_env import tf

    pair_dir = tmp_path / "csaw_pair"
    pair_dir.mkdir()
    (pair_dir / "bad.h5").symlink_to(csaw_dir / "models" / "sunglasses_bd_weights.h5")
    (pair_dir / "repaired.h5").symlink_to(csaw_dir / "models" / "anonymous_1_bd_weights.h5")
    csaw_images = np.stack(
        [
            np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255
            for p in sorted((csaw_dir / "images").glob("*.png"))
        ]
    )
    demo_images = load_dataset(demo_root / "data" / "demo" / "poisoned_test_sunglasses.h5").x
    for folder, images in (
        (pair_dir, csaw_images),
        (demo_root / "models" / "demo", demo_images[:16]),
    ):
        pair = load_pair(folder, runtime="onnx")
        assert pair.runtime == "onnxruntime+tensorflow"
        onnx = pair.classify(images[:16])
        reference = pair._fused(tf.constant(images[:16]))
        np.testing.assert_array_equal(onnx.label, reference["label"].numpy())
        np.testing.assert_array_equal(onnx.bad_label, reference["bad_label"].numpy())
        np.testing.assert_array_equal(onnx.repaired_label, reference["repaired_label"].numpy())
        np.testing.assert_allclose(onnx.confidence, reference["confidence"].numpy(), atol=1e-4)
