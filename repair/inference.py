"""Batched label prediction through a compiled graph (``predict()`` is slow per call)."""

import numpy as np

from repair.keras_env import keras, tf


def predict_labels(model: keras.Model, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Argmax label of ``model`` for every image of ``x``."""
    return predict_scores(model, x, batch_size).argmax(axis=1)


def predict_scores(model: keras.Model, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Model outputs for every image of ``x``, in batches through one compiled function."""
    call = compiled_call(model)
    parts = [call(tf.constant(x[i : i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
    if not parts:
        return np.zeros((0, int(model.output_shape[-1])), dtype=np.float32)
    return np.concatenate(parts)


def compiled_call(model: keras.Model):  # a tf.function
    """The model's forward pass as a ``tf.function``, made once per model and kept on it."""
    call = getattr(model, "_compiled_inference", None)
    if call is None:
        call = tf.function(
            lambda batch: model(batch, training=False), reduce_retracing=True, autograph=False
        )
        model._compiled_inference = call
    return call
