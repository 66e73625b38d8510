"""The model files users have, and the roles found in any graph (fast tier: untrained nets,
no repair run).

Every file form loads to the same functional model; what cannot be repaired is refused
when it is loaded, with one line that says why; the feature map, frozen, re-initialised
and sparse layers are found from the graph of DeepID, a residual net and a MobileNet, and
of one written with TensorFlow arithmetic (``x + y``, ``tf.nn.relu6``); a mask on the
feature map prunes a channel for good, behind BatchNorm and residual adds; and the exported
pair graph needs nothing but the images, whatever constants and activations the nets use.
"""

import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from attacks.zoo import ARCHITECTURES
from repair.cli import main
from repair.errors import RepairInputError
from repair.export import pair_graph
from repair.graph import feature_layers, find_roles, set_pruned, with_channel_mask
from repair.keras_env import keras, tf
from repair.model_io import load_model_file

pytestmark = pytest.mark.fast


def _net(arch: str, classes: int = 7) -> keras.Model:
    built = ARCHITECTURES[arch]
    keras.utils.set_random_seed(0)
    return built.build(classes, built.input_shape)


def _save(model: keras.Model, path: Path, form: str) -> Path:
    if form == "keras":
        model.save(path.with_suffix(".keras"))
        return path.with_suffix(".keras")
    if form == "h5":
        model.save(path.with_suffix(".h5"), save_format="h5")
        return path.with_suffix(".h5")
    model.save(path, save_format="tf")  # a SavedModel folder
    return path


@pytest.mark.parametrize("form", ["keras", "h5", "savedmodel"])
@pytest.mark.parametrize("arch", ["resnet", "mobilenet"])
def test_every_file_form_loads_the_same_model(tmp_path: Path, arch: str, form: str) -> None:
    model = _net(arch)
    loaded = load_model_file(_save(model, tmp_path / "net", form))
    assert loaded.input_shape == model.input_shape and loaded.output_shape == (None, 7)
    images = np.random.default_rng(0).uniform(0, 1, (4, *model.input_shape[1:]))
    np.testing.assert_allclose(loaded(images), model(images), atol=1e-5)


def test_a_sequential_model_is_loaded_as_a_graph(tmp_path: Path) -> None:
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            layers.Conv2D(8, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(8, 3, activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(5, activation="softmax"),
        ]
    )
    loaded = load_model_file(_save(model, tmp_path / "seq", "keras"))
    roles = find_roles(loaded)
    assert roles.feature_layer == loaded.layers[-3].name  # the last convolution
    assert roles.reinit == roles.sparse == (loaded.layers[-1].name,)


@pytest.mark.parametrize(
    ("arch", "feature", "frozen", "head"),
    [
        ("deepid", "pool_3", ("conv_1", "conv_2"), ("fc_1", "fc_2", "output")),
        (
            "resnet",
            "stage3_out",
            ("stem_conv", "stem_bn", "stage1_a_conv", "stage1_a_bn", "stage1_b_conv"),
            ("classifier",),
        ),
        ("mobilenet", "block5_pw_relu", None, ("classifier",)),
    ],
)
def test_roles_are_found_from_the_graph(
    arch: str, feature: str, frozen: tuple | None, head: tuple
) -> None:
    assert find_roles(_net(arch)).frozen == ()  # the default: the whole net fine-tunes
    roles = find_roles(_net(arch), frozen_fraction=0.5)
    assert roles.feature_layer == feature
    assert roles.reinit == roles.sparse == head
    if frozen is not None:
        assert roles.frozen[: len(frozen)] == frozen
    assert roles.frozen and feature not in roles.frozen


@pytest.mark.parametrize(
    ("name", "feature", "head"),
    [
        ("MobileNet", "conv_pw_13_relu", ("conv_preds",)),
        ("MobileNetV3Small", None, ("Conv_2", "Logits")),
        ("MobileNetV2", "out_relu", ("predictions",)),
    ],
)
def test_a_classifier_convolution_on_pooled_features_is_head_not_feature_map(
    name: str, feature: str | None, head: tuple
) -> None:
    """keras.applications' MobileNets pool to a 1x1 map and classify it with 1x1
    convolutions: those are the head, and the map pruned is the last one before pooling."""
    net = getattr(keras.applications, name)(weights=None, input_shape=(64, 64, 3), classes=7)
    roles = find_roles(net)
    assert roles.reinit == roles.sparse == head
    shape = net.get_layer(roles.feature_layer).output.shape
    assert shape[1] * shape[2] > 1 and shape[3] == roles.channels != 7
    if feature is not None:
        assert roles.feature_layer == feature


def test_a_layer_inside_a_residual_block_is_refused_with_the_ones_that_work() -> None:
    with pytest.raises(RepairInputError) as refused:
        find_roles(_net("resnet"), feature_layer="stage3_b_conv")
    message = str(refused.value)
    assert "residual connection" in message and "stage3_out" in message and "\n" not in message


@pytest.mark.parametrize("arch", ["deepid", "resnet", "mobilenet"])
def test_a_masked_channel_is_pruned_for_good(arch: str) -> None:
    """With every channel of the feature map masked, the output no longer depends on the
    image (BatchNorm shifts and residual adds are all before the mask); with none masked,
    the model is unchanged."""
    model = _net(arch)
    roles = find_roles(model)
    masked = with_channel_mask(model, roles.feature_layer)
    images = np.random.default_rng(1).uniform(0, 1, (6, *model.input_shape[1:]))
    np.testing.assert_allclose(masked(images), model(images), atol=1e-6)
    set_pruned(masked, range(roles.channels))
    outputs = masked(images).numpy()
    np.testing.assert_allclose(outputs, np.broadcast_to(outputs[0], outputs.shape), atol=1e-6)


def _with_tf_arithmetic() -> keras.Model:
    """A net written as MobileNetV3 and RegNet are: a residual connection made with
    ``tf.math.add`` (the skip among its keyword arguments) and a hard swish made with
    ``+``, ``*``, ``/`` and ``tf.nn.relu6``, each recorded by Keras as a TFOpLambda layer."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, name="stem")(inputs)
    cut = keras.layers.ReLU(name="cut")(x)
    branch = keras.layers.Conv2D(4, 1, name="branch")(cut)
    x = tf.math.add(branch, y=cut)
    x = x * tf.nn.relu6(x + 3.0) / 6.0
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(x))


@pytest.mark.parametrize("form", ["keras", "h5", "savedmodel"])
def test_tensorflow_arithmetic_in_the_graph_is_loaded_and_read(tmp_path: Path, form: str) -> None:
    model = load_model_file(_save(_with_tf_arithmetic(), tmp_path / "net", form))
    candidates = feature_layers(model)
    # The skip connection, kept among tf.math.add's keyword arguments, goes around "branch".
    assert "cut" in candidates and "branch" not in candidates
    roles = find_roles(model)
    assert type(model.get_layer(roles.feature_layer)).__name__ == "TFOpLambda"
    assert roles.reinit == roles.sparse == ("head",)


def test_a_mask_read_through_keyword_arguments_prunes_for_good() -> None:
    model = _with_tf_arithmetic()
    masked = with_channel_mask(model, "cut")
    images = np.random.default_rng(2).uniform(0, 1, (6, 16, 16, 3))
    np.testing.assert_allclose(masked(images), model(images), atol=1e-6)
    set_pruned(masked, range(4))
    outputs = masked(images).numpy()
    np.testing.assert_allclose(outputs, np.broadcast_to(outputs[0], outputs.shape), atol=1e-6)


def test_a_tensorflow_call_that_is_not_arithmetic_is_refused(tmp_path: Path) -> None:
    path = _save(_with_tf_arithmetic(), tmp_path / "net", "keras")
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    for entry in config["config"]["layers"]:
        if entry["class_name"] == "TFOpLambda" and entry["config"]["function"] == "nn.relu6":
            entry["config"]["function"] = "io.write_file"
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    with pytest.raises(RepairInputError, match=re.escape("['io.write_file']")) as refused:
        load_model_file(path)
    assert "\n" not in str(refused.value)


def test_the_pair_graph_needs_only_the_images() -> None:
    """Constants computed outside the graph (a Normalization layer's mean and variance) and
    the exact GELU (TensorFlow's erfc, which ONNX lacks) export and run in ONNX Runtime,
    with Keras' labels."""
    keras.utils.set_random_seed(3)
    images = np.random.default_rng(3).uniform(0, 1, (64, 16, 16, 3)).astype(np.float32)
    normalise = keras.layers.Normalization()
    normalise.adapt(images)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, activation="gelu")(normalise(inputs))
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(x))
    outputs = pair_graph(model, model, 3.0).run(images)
    np.testing.assert_array_equal(outputs["bad_label"], model.predict(images, verbose=0).argmax(1))
    np.testing.assert_allclose(outputs["overlap"], 1.0, atol=1e-5)


def _subclassed() -> keras.Model:
    class Subclassed(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.conv = keras.layers.Conv2D(4, 3)
            self.flat = keras.layers.Flatten()
            self.dense = keras.layers.Dense(3, activation="softmax")

        def call(self, x):
            return self.dense(self.flat(self.conv(x)))

    model = Subclassed()
    model(keras.Input((16, 16, 3)))
    return model


class Doubled(keras.layers.Layer):
    """A custom layer class: its code is not in the file, so it cannot load safely."""

    def call(self, x):
        return 2 * x


def _functional(middle: object = None, activation: str = "softmax", conv: bool = True):
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3)(inputs) if conv else inputs
    if middle is not None:
        x = middle(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation=activation)(x))


@pytest.mark.parametrize(
    ("make", "form", "message"),
    [
        (_subclassed, "keras", "subclassed model"),
        (_subclassed, "savedmodel", "subclassed model"),
        (lambda: _functional(keras.layers.Lambda(lambda t: t * 2)), "keras", "Lambda"),
        (lambda: _functional(Doubled()), "keras", "custom layer classes ['Doubled']"),
        (lambda: _functional(Doubled()), "h5", "custom layer classes ['Doubled']"),
        (lambda: _functional(conv=False), "keras", "no convolutional feature map"),
        (lambda: _functional(activation="linear"), "keras", "is not a softmax"),
    ],
)
def test_what_cannot_be_repaired_is_refused_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, make: object, form: str, message: str
) -> None:
    path = _save(make(), tmp_path / "model", form)
    with pytest.raises(RepairInputError, match=re.escape(message)):
        load_model_file(path)
    capsys.readouterr()  # Keras' warnings while saving
    clean = tmp_path / "clean.h5"
    out = tmp_path / "models" / "x"
    arguments = ["fine-prune", "--bad-model", str(path), "--clean-data", str(clean)]
    assert main([*arguments, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not out.exists()
