"""The one place that imports TensorFlow, tf_keras and tfmot for the package."""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["keras", "tf"]


def tfmot_sparsity():  # type: ignore[no-untyped-def]
    """Import ``tfmot.sparsity.keras`` lazily: it is slow and only fine-tuning needs it."""
    import tensorflow_model_optimization as tfmot

    return tfmot.sparsity.keras
