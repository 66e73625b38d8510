"""The model repository: folders it must refuse, and pick-up of new versions, on real models."""

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.serving.pair import LoadOptions
from app.serving.registry import Registry
from modelstore import publish, staging_folder
from tests.support.fake_pair import write_fake_pair


def _copy_demo(tiny_root: Path, target: Path) -> None:
    shutil.copytree((tiny_root / "models" / "demo").resolve(), target)


def test_tampered_and_mismatched_folders_are_refused_others_serve(
    tiny_root: Path, csaw_dir: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    _copy_demo(tiny_root, models / "good")
    _copy_demo(tiny_root, models / "tampered")
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
    assert "not a model file" in registry.refused["not_a_model"]


def test_new_version_is_picked_up_and_missing_folder_dropped(
    tiny_root: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    staging = staging_folder(models / "demo")
    shutil.rmtree(staging)
    _copy_demo(tiny_root, staging)
    publish(staging, models / "demo", "v1")
    registry = Registry(models)
    assert registry.refresh() == ["demo"]
    assert registry.refresh() == []  # nothing changed
    staging = staging_folder(models / "demo")
    shutil.rmtree(staging)
    _copy_demo(tiny_root, staging)
    publish(staging, models / "demo", "v2")
    assert registry.refresh() == ["demo"]
    assert registry.get(None) is registry.pairs()["demo"]
    (models / "demo").unlink()
    registry.refresh()
    assert registry.pairs() == {}


@pytest.mark.fast
def test_default_model_choice(tmp_path: Path) -> None:
    """The only model, else DEFAULT_MODEL, else none (fake pairs, fast tier)."""
    models = tmp_path / "models"
    write_fake_pair(models, "a")
    onnx = LoadOptions(runtime="onnx")
    alone = Registry(models, load_options=onnx)
    alone.refresh()
    assert alone.get(None).name == "a"  # the only one
    write_fake_pair(models, "b")
    for default, expected in ((None, None), ("a", "a"), ("b", "b")):
        registry = Registry(models, default_model=default, load_options=onnx)
        registry.refresh()
        assert sorted(registry.pairs()) == ["a", "b"]
        chosen = registry.get(None)
        assert (chosen.name if chosen else None) == expected, default


def test_broken_foreign_and_code_carrying_model_files_are_refused_with_a_logged_reason(
    tiny_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The issue's model-file faults, each in its own folder beside a good one (no manifest,
    so only the files themselves can refuse them)."""
    from repair.keras_env import keras

    models = tmp_path / "models"
    demo = (tiny_root / "models" / "demo").resolve()
    _copy_demo(tiny_root, models / "good")

    def folder(name: str, repaired_writer) -> None:
        (models / name).mkdir()
        shutil.copy(demo / "bad.h5", models / name / "bad.h5")
        repaired_writer(models / name / "repaired.h5")

    data = (demo / "repaired.h5").read_bytes()
    folder("truncated", lambda p: p.write_bytes(data[: len(data) // 2]))

    def other_architecture(path: Path) -> None:  # a CIFAR-sized net: 32x32x3 in, 10 out
        inputs = keras.Input((32, 32, 3))
        hidden = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
        outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(hidden))
        keras.Model(inputs, outputs).save(str(path), save_format="h5")

    folder("other_architecture", other_architecture)

    def code_carrying(path: Path) -> None:  # a Lambda layer: code that load_model would run
        inputs = keras.Input((55, 47, 3))
        hidden = keras.layers.Lambda(lambda t: t * 2)(inputs)
        outputs = keras.layers.Dense(200, activation="softmax")(keras.layers.Flatten()(hidden))
        keras.Model(inputs, outputs).save(str(path), save_format="h5")

    folder("lambda_layer", code_carrying)

    def foreign_weights(path: Path) -> None:  # weights-only, of layers DeepID does not have
        inputs = keras.Input((55, 47, 3))
        outputs = keras.layers.Dense(200, name="mystery")(keras.layers.Flatten()(inputs))
        keras.Model(inputs, outputs).save_weights(str(path), save_format="h5")

    folder("foreign_weights", foreign_weights)
    _copy_demo(tiny_root, models / "bad_hash")
    manifest = json.loads((models / "bad_hash" / "manifest.json").read_text())
    manifest["files"]["bad.h5"] = "0" * 64
    (models / "bad_hash" / "manifest.json").write_text(json.dumps(manifest))

    registry = Registry(models, load_options=LoadOptions(runtime="tf"))
    with caplog.at_level(logging.WARNING):
        registry.refresh()
    assert sorted(registry.pairs()) == ["good"]
    reasons = {
        "truncated": "HDF5",
        "other_architecture": "differ in input shape or class count",
        "lambda_layer": "Lambda",
        "foreign_weights": "no 'output' layer",
        "bad_hash": "SHA-256",
    }
    for name, reason in reasons.items():
        assert reason in registry.refused[name], (name, registry.refused[name])
        assert any(name in r.getMessage() and reason in r.getMessage() for r in caplog.records)
    assert registry.get("good").classify(np.zeros((2, 55, 47, 3), np.float32)).label.shape == (2,)
