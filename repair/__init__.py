"""Offline repair of backdoored (BadNet) face classifiers by fine-pruning.

Public entry points (everything else in this package is internal):

* :func:`repair.pipeline.fine_prune_to_folder` - repair a BadNet and write a model folder.
* :func:`repair.model_io.load_model_file` - load a full Keras model or CSAW weights file.
* :func:`repair.data.load_dataset` - load a challenge HDF5 file or an image folder.
* :func:`repair.export.fuse`, :func:`repair.export.to_onnx` - the pair's graph, for serving.

``repair.keras_env`` is the one place TensorFlow and Keras 2 are imported, for whoever runs
a Keras model.

The Keras 2 API (``tf_keras``) is required by tensorflow-model-optimization, so the
environment switch is set here, before any submodule imports TensorFlow.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


from typing import Any  # noqa: E402

from repair.errors import RepairError, RepairInputError  # noqa: E402

_PUBLIC = {
    "fine_prune_to_folder": "repair.pipeline",
    "RepairInputs": "repair.pipeline",
    "RepairOptions": "repair.options",
    "load_model_file": "repair.model_io",
    "load_dataset": "repair.data",
    "fuse": "repair.export",
    "to_onnx": "repair.export",
}

__all__ = ["RepairError", "RepairInputError", *_PUBLIC]


def __getattr__(name: str) -> Any:
    """Import the public entry points lazily: most of them load TensorFlow."""
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'repair' has no attribute {name!r}")
