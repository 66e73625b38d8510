"""Load a BadNet from a full Keras HDF5 model or a CSAW weights-only HDF5 file, and save one."""

import json
import warnings
from pathlib import Path

import h5py
import numpy as np

from repair.architecture import build_deepid
from repair.errors import RepairInputError
from repair.keras_env import keras

FORBIDDEN_LAYER_CLASSES = frozenset({"Lambda", "TFOpLambda"})
"""Layers whose config carries code: loading them would run the file's author's code."""

EXPECTED = (
    "a Keras HDF5 file: a full model (model.save(..., save_format='h5')) "
    "or a weights-only file of the CSAW DeepID network (model.save_weights)"
)


def load_model_file(path: str | Path) -> keras.Model:
    """Load a classifier from ``path``, telling the two HDF5 layouts apart from the file itself.

    Raises :class:`RepairInputError` naming the file when it is neither layout.
    """
    path = Path(path)
    if not path.is_file():
        raise RepairInputError(f"{path}: model file not found")
    try:
        with h5py.File(path, "r") as handle:
            layout = _detect_layout(path, handle)
            config = handle.attrs.get("model_config")
            num_classes = _weights_file_classes(path, handle) if layout == "weights" else 0
            layer_names = _layer_names(handle) if layout == "weights" else []
    except OSError as exc:
        raise RepairInputError(f"{path}: not an HDF5 file ({exc}); expected {EXPECTED}") from exc
    if layout == "full":
        _refuse_code_layers(path, config)
        try:
            model = keras.models.load_model(path, compile=False)
        except Exception as exc:  # Keras raises many types for a bad config
            raise RepairInputError(f"{path}: cannot load the Keras model: {exc}") from exc
    else:
        model = build_deepid(num_classes)
        _check_weight_layer_names(path, model, layer_names)
        try:
            model.load_weights(path, by_name=True)
        except Exception as exc:
            raise RepairInputError(
                f"{path}: weights do not fit the DeepID network ({exc}); expected {EXPECTED}"
            ) from exc
    _check_classifier(path, model)
    return model


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


def _refuse_code_layers(path: Path, config: object) -> None:
    if isinstance(config, bytes):
        config = config.decode("utf-8")
    try:
        parsed = json.loads(str(config))
    except json.JSONDecodeError as exc:
        raise RepairInputError(f"{path}: model config is not valid JSON") from exc
    found = sorted(_layer_classes(parsed) & FORBIDDEN_LAYER_CLASSES)
    if found:
        raise RepairInputError(
            f"{path}: model contains {', '.join(found)} layers, which run code on load; refused"
        )


def _layer_classes(node: object) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("class_name"), str):
            found.add(node["class_name"])
        for value in node.values():
            found |= _layer_classes(value)
    elif isinstance(node, list):
        for value in node:
            found |= _layer_classes(value)
    return found


def _check_classifier(path: Path, model: keras.Model) -> None:
    if len(model.inputs) != 1 or len(model.outputs) != 1 or len(model.output_shape) != 2:
        raise RepairInputError(
            f"{path}: expected an image classifier with one input and one (batch, classes) output"
        )
    if len(model.input_shape) != 4:
        raise RepairInputError(
            f"{path}: expected an image input (H, W, C), got {model.input_shape}"
        )


def weights_digest(model: keras.Model) -> str:
    """SHA-256 of a model's weights in memory (to prove that a step left it untouched)."""
    import hashlib

    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()
