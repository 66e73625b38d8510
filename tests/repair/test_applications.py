"""Nets this repository never built, repaired end to end (standard tier: about a minute
each on 2 cores).

keras.applications' MobileNetV3Small (hard swish written with TensorFlow arithmetic, which
Keras records as TFOpLambda layers) and EfficientNetB0 (a Normalization layer whose mean
and variance are constants computed outside the graph), with no pretrained weights,
trained one epoch on demo faces, saved as ``.keras`` and repaired by the command line. The
repair checks the exported pair against Keras on every face it was given; here the
published graph must also need nothing but the images.
"""

import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from attacks.material import DemoSizes, make_demo_material
from repair.cli import main
from repair.data import save_h5
from repair.keras_env import keras

IDENTITIES = 20


@pytest.fixture(scope="module")
def faces() -> object:
    sizes = DemoSizes(
        identities=IDENTITIES, train_per_identity=5, validation_per_identity=10, test_per_identity=2
    )
    return make_demo_material(sizes, ()).resized(64, 64)


@pytest.mark.parametrize("name", ["MobileNetV3Small", "EfficientNetB0"])
def test_a_keras_applications_net_is_repaired(tmp_path: Path, faces: object, name: str) -> None:
    keras.utils.set_random_seed(0)
    net = getattr(keras.applications, name)(
        weights=None, input_shape=(64, 64, 3), classes=IDENTITIES
    )
    net.compile("adam", "sparse_categorical_crossentropy")
    net.fit(faces.train.x, faces.train.y, epochs=1, batch_size=32, verbose=0)
    net.save(tmp_path / "bad.keras")
    save_h5(faces.validation, tmp_path / "clean.h5")
    out = tmp_path / "models" / "net"
    arguments = [
        "--bad-model",
        str(tmp_path / "bad.keras"),
        "--clean-data",
        str(tmp_path / "clean.h5"),
    ]
    options = ["--steps", "10", "--sweep-faces", "100"]
    assert main(["fine-prune", *arguments, "--out", str(out), *options]) == 0

    checked = json.loads((out / "manifest.json").read_text())["onnx"]["images_checked"]
    parts = ("clean data (held-out part)", "clean data (fine-tuning part)")
    assert sum(checked[part] for part in parts) == len(faces.validation)
    session = onnxruntime.InferenceSession(
        str(out / "pair.onnx"), providers=["CPUExecutionProvider"]
    )
    assert [graph_input.name for graph_input in session.get_inputs()] == ["images"]
    labels = session.run(["bad_label"], {"images": faces.test.x})[0]
    np.testing.assert_array_equal(labels, net.predict(faces.test.x, verbose=0).argmax(axis=1))
