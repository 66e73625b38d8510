"""Load a BadNet from the files users have (.keras, HDF5, SavedModel, CSAW weights), refusing
what cannot be repaired with one line, and save one."""

import json
import warnings
import zipfile
from pathlib import Path

import h5py
import numpy as np

from repair.architecture import build_deepid
from repair.errors import RepairInputError
from repair.graph import as_functional, feature_layers
from repair.keras_env import keras

FORBIDDEN_LAYER_CLASSES = frozenset({"Lambda"})
"""Layers whose config carries code: refused, since loading them would run the file's
author's code."""

TF_OPERATION_CLASSES = frozenset({"TFOpLambda", "SlicingOpLambda"})
"""Layers that call a TensorFlow function by name: what Keras records for ``x + 3``,
``x * tf.nn.relu6(x)`` or ``x[..., :8]`` in a functional model (keras.applications'
MobileNetV3, RegNet and ConvNeXt have them). Accepted when the function is one of
:data:`TF_OPERATIONS`; any other name could read or write files when the model runs."""

TF_OPERATIONS = frozenset(
    {
        *(f"__operators__.{op}" for op in ("add", "sub", "mul", "truediv", "neg", "getitem")),
        *(
            f"math.{op}"
            for op in (
                "add", "subtract", "multiply", "truediv", "divide", "negative", "maximum",
                "minimum", "sigmoid", "tanh", "exp", "sqrt", "square", "abs", "pow",
                "reduce_mean", "reduce_max", "reduce_sum", "log",
            )
        ),
        *(
            f"nn.{op}"
            for op in ("relu", "relu6", "silu", "swish", "gelu", "sigmoid", "softmax",
                       "leaky_relu", "elu", "selu")
        ),
        "clip_by_value", "concat", "reshape", "transpose", "identity", "cast",
    }
)  # fmt: skip
"""The TensorFlow functions a model file may call: tensor arithmetic and activations."""

MODEL_CLASSES = frozenset({"Functional", "Model", "Sequential"})
"""Models whose layers form a graph that the repair can read (not subclassed models)."""

EXPECTED = (
    "a Keras image classifier ending in softmax, as a .keras file (model.save), an HDF5 "
    "file (save_format='h5'), a SavedModel folder, or a CSAW DeepID weights-only file"
)


def load_model_file(path: str | Path) -> keras.Model:
    """Load a classifier from ``path`` in any of the :data:`EXPECTED` forms, told apart by
    their contents, as a functional model.

    Raises :class:`RepairInputError` with one line saying why the model cannot be repaired
    and what would work: a subclassed model, Lambda or custom layers, no convolutional
    feature map, not a softmax classifier.
    """
    path = Path(path)
    if path.is_dir():
        model = _load_saved_model(path)
    elif not path.is_file():
        raise RepairInputError(f"{path}: model file not found")
    elif zipfile.is_zipfile(path):
        model = _load_keras_archive(path)
    elif h5py.is_hdf5(path):
        model = _load_h5(path)
    else:
        raise RepairInputError(f"{path}: not a model file; expected {EXPECTED}")
    model = as_functional(model)
    _check_classifier(path, model)
    if not feature_layers(model):
        raise RepairInputError(
            f"{path}: no convolutional feature map that every path to the output crosses; "
            f"fine-pruning needs a convolutional image classifier"
        )
    return model


def _load_h5(path: Path) -> keras.Model:
    try:
        with h5py.File(path, "r") as handle:
            layout = _detect_layout(path, handle)
            config = handle.attrs.get("model_config")
            num_classes = _weights_file_classes(path, handle) if layout == "weights" else 0
            layer_names = _layer_names(handle) if layout == "weights" else []
    except OSError as exc:
        raise RepairInputError(
            f"{path}: not a readable HDF5 file ({exc}); expected {EXPECTED}"
        ) from exc
    if layout == "full":
        if isinstance(config, bytes):
            config = config.decode("utf-8")
        _check_config(path, _parse_json(path, str(config)))
        return _keras_load(path)
    model = build_deepid(num_classes)
    _check_weight_layer_names(path, model, layer_names)
    try:
        model.load_weights(path, by_name=True)
    except Exception as exc:
        raise RepairInputError(
            f"{path}: weights do not fit the DeepID network ({exc}); expected {EXPECTED}"
        ) from exc
    return model


def _load_keras_archive(path: Path) -> keras.Model:
    try:
        with zipfile.ZipFile(path) as archive:
            config = archive.read("config.json").decode("utf-8")
    except (KeyError, zipfile.BadZipFile, OSError) as exc:
        raise RepairInputError(f"{path}: a zip file but not a .keras model ({exc})") from exc
    _check_config(path, _parse_json(path, config))
    return _keras_load(path)


def _load_saved_model(path: Path) -> keras.Model:
    from tf_keras.protobuf import saved_metadata_pb2

    metadata_file = path / "keras_metadata.pb"
    if not metadata_file.is_file():
        raise RepairInputError(
            f"{path}: a folder without keras_metadata.pb, not a Keras SavedModel; "
            f"expected {EXPECTED}"
        )
    metadata = saved_metadata_pb2.SavedMetadata()
    try:
        metadata.ParseFromString(metadata_file.read_bytes())
    except Exception as exc:  # protobuf's DecodeError
        raise RepairInputError(f"{path}: unreadable keras_metadata.pb ({exc})") from exc
    entries = {node.node_path: _parse_json(path, node.metadata) for node in metadata.nodes}
    root = entries.pop("root", {})
    _check_classes(path, str(root.get("class_name", "")), list(entries.values()))
    return _keras_load(path)


def _keras_load(path: Path) -> keras.Model:
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a bad file
        raise RepairInputError(f"{path}: cannot load the Keras model: {_one_line(exc)}") from exc


def _parse_json(path: Path, text: str) -> dict:
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RepairInputError(f"{path}: model config is not valid JSON") from exc
    if not isinstance(parsed, dict):
        raise RepairInputError(f"{path}: model config is not a JSON object")
    return parsed


def _check_config(path: Path, config: dict) -> None:
    """Refuse subclassed models and code or custom layers before Keras loads anything."""
    _check_classes(path, str(config.get("class_name", "")), _layer_entries(config))


def _layer_entries(model_config: dict) -> list[dict]:
    """The layer entries of a functional or Sequential config, nested models included."""
    found: list[dict] = []
    for entry in model_config.get("config", {}).get("layers", []):
        found.append(entry)
        if entry.get("class_name") in MODEL_CLASSES:
            found += _layer_entries(entry)
    return found


def _check_classes(path: Path, model_class: str, layers: list[dict]) -> None:
    """Refuse the model unless it is a layer graph of built-in layers; ``layers`` are the
    layers' serialised entries (``class_name``, ``config``)."""
    if model_class not in MODEL_CLASSES:
        raise RepairInputError(
            f"{path}: a subclassed model ({model_class or 'unknown class'}) has no layer graph "
            "to prune; rebuild it with the functional API or keras.Sequential and save it again"
        )
    layer_classes = {str(entry.get("class_name", "")) for entry in layers}
    code = sorted(layer_classes & FORBIDDEN_LAYER_CLASSES)
    if code:
        raise RepairInputError(
            f"{path}: model contains {', '.join(code)} layers, which run code on load; "
            "refused (replace them with built-in Keras layers)"
        )
    calls = {
        str((entry.get("config") or {}).get("function"))
        for entry in layers
        if entry.get("class_name") in TF_OPERATION_CLASSES
    }
    unknown = sorted(calls - TF_OPERATIONS)
    if unknown:
        raise RepairInputError(
            f"{path}: model calls TensorFlow functions {unknown}, which are not tensor "
            "arithmetic or activations; refused (only those can be loaded safely)"
        )
    custom = sorted(layer_classes - _builtin_layer_classes() - MODEL_CLASSES - TF_OPERATION_CLASSES)
    if custom:
        raise RepairInputError(
            f"{path}: custom layer classes {custom} cannot be loaded safely; refused "
            "(only built-in Keras layers can be repaired)"
        )


def _builtin_layer_classes() -> set[str]:
    return {
        name
        for name, value in vars(keras.layers).items()
        if isinstance(value, type) and issubclass(value, keras.layers.Layer)
    }


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def save_model_file(model: keras.Model, path: str | Path) -> None:
    """Save ``model`` as a full Keras HDF5 file that loads with plain ``load_model``."""
    with warnings.catch_warnings():  # HDF5 is "legacy" to Keras, but it is the CSAW format
        warnings.simplefilter("ignore", UserWarning)
        model.save(str(path), save_format="h5", include_optimizer=False)


def model_num_classes(model: keras.Model) -> int:
    """Number of classes of a softmax classifier (its last dimension)."""
    return int(model.output_shape[-1])


def model_input_shape(model: keras.Model) -> tuple[int, int, int]:
    """Input shape (height, width, channels) without the batch dimension."""
    return tuple(int(d) for d in model.input_shape[1:])  # type: ignore[return-value]


def _detect_layout(path: Path, handle: h5py.File) -> str:
    if "model_config" in handle.attrs and "model_weights" in handle:
        return "full"
    if "layer_names" in handle.attrs:
        return "weights"
    raise RepairInputError(
        f"{path}: HDF5 file holds no Keras model or weights; expected {EXPECTED}"
    )


def _layer_names(handle: h5py.File) -> list[str]:
    return [n.decode() if isinstance(n, bytes) else str(n) for n in handle.attrs["layer_names"]]


def _check_weight_layer_names(path: Path, model: keras.Model, file_layers: list[str]) -> None:
    missing = [
        layer.name for layer in model.layers if layer.weights and layer.name not in file_layers
    ]
    if missing:
        raise RepairInputError(f"{path}: weights file lacks layers {missing}; expected {EXPECTED}")


def _weights_file_classes(path: Path, handle: h5py.File) -> int:
    names = _layer_names(handle)
    if "output" not in names or "output" not in handle:
        raise RepairInputError(f"{path}: weights file has no 'output' layer; expected {EXPECTED}")
    kernels = [k for k in _dataset_names(handle["output"]) if k.endswith("kernel:0")]
    if not kernels:
        raise RepairInputError(f"{path}: weights file has no output kernel; expected {EXPECTED}")
    shape = handle["output"][kernels[0]].shape
    if len(shape) != 2:
        raise RepairInputError(f"{path}: output kernel has shape {shape}; expected {EXPECTED}")
    return int(shape[1])


def _dataset_names(group: h5py.Group) -> list[str]:
    names: list[str] = []
    group.visititems(
        lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None
    )
    return names


def _check_classifier(path: Path, model: keras.Model) -> None:
    if len(model.inputs) != 1 or len(model.outputs) != 1 or len(model.output_shape) != 2:
        raise RepairInputError(
            f"{path}: expected an image classifier with one input and one (batch, classes) "
            f"output, got inputs {model.input_shape} and outputs {model.output_shape}"
        )
    shape = model.input_shape
    if len(shape) != 4 or shape[-1] != 3 or None in shape[1:]:
        raise RepairInputError(
            f"{path}: expected a fixed-size RGB image input (H, W, 3), got {shape[1:]}; "
            "save the model with a fixed input shape"
        )
    last = model.get_layer(model.get_config()["output_layers"][0][0])
    activation = getattr(last, "activation", None)
    if not (
        isinstance(last, keras.layers.Softmax)
        or (activation is not None and keras.activations.serialize(activation) == "softmax")
    ):
        raise RepairInputError(
            f"{path}: the output layer {last.name!r} is not a softmax; the filter compares "
            "class probabilities: end the model with a softmax activation and save it again"
        )


def weights_digest(model: keras.Model) -> str:
    """SHA-256 of a model's weights in memory (to prove that a step left it untouched)."""
    import hashlib

    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()
