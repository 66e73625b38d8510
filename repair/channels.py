"""Activation-guided channel pruning of one convolutional layer (Liu et al., RAID 2018)."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from repair.errors import RepairInputError
from repair.inference import predict_labels, predict_scores
from repair.keras_env import keras


def conv_layer(model: keras.Model, name: str) -> keras.layers.Conv2D:
    """The named Conv2D layer, or a clear error listing the ones there are."""
    convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    if name not in convs:
        raise RepairInputError(f"layer {name!r} is not a Conv2D layer of the model; it has {convs}")
    return model.get_layer(name)


def mean_channel_activations(model: keras.Model, layer_name: str, x: np.ndarray) -> np.ndarray:
    """Mean activation of each output channel of ``layer_name`` over images ``x``."""
    trunk = keras.Model(model.input, conv_layer(model, layer_name).output)
    return predict_scores(trunk, x).mean(axis=(0, 1, 2))


def zero_channels(model: keras.Model, layer_name: str, channels: Sequence[int]) -> None:
    """Prune ``channels`` of a Conv2D layer for real: their kernels and biases become 0.

    With a ReLU (or any activation with f(0) = 0) the channel then outputs 0 for every
    input, and gets no gradient from ReLU at 0, so fine-tuning does not revive it.
    """
    layer = conv_layer(model, layer_name)
    weights = layer.get_weights()
    index = np.asarray(list(channels), dtype=np.int64)
    weights[0][..., index] = 0.0
    if len(weights) > 1:
        weights[1][index] = 0.0
    layer.set_weights(weights)


@dataclass(frozen=True)
class SweepPoint:
    """Accuracy (and attack success, when poisoned data is known) with ``pruned`` channels off."""

    pruned: int
    fraction: float
    clean_accuracy: float
    attack_success_rate: float | None


def pruning_sweep(
    model: keras.Model,
    layer_name: str,
    order: np.ndarray,
    clean_x: np.ndarray,
    clean_y: np.ndarray,
    poisoned_x: np.ndarray | None = None,
    poisoned_target: np.ndarray | None = None,
) -> list[SweepPoint]:
    """Accuracy after switching off ``order[:k]`` for every k, without touching ``model``.

    The layer's output is computed once; only the rest of the network runs per step, with
    the pruned channels masked to 0 (the same output as zeroed kernels and biases).
    """
    layer = conv_layer(model, layer_name)
    trunk = keras.Model(model.input, layer.output)
    head = keras.Model(layer.output, model.output)
    clean_features = predict_scores(trunk, clean_x)
    poisoned_features = None if poisoned_x is None else predict_scores(trunk, poisoned_x)
    channels = int(layer.filters)
    mask = np.ones(channels, dtype=np.float32)
    points = []
    for pruned in range(channels + 1):
        if pruned:
            mask[order[pruned - 1]] = 0.0
        accuracy = float(np.mean(_masked_labels(head, clean_features, mask) == clean_y))
        asr = None
        if poisoned_features is not None and poisoned_target is not None:
            labels = _masked_labels(head, poisoned_features, mask)
            asr = float(np.mean(labels == poisoned_target))
        points.append(SweepPoint(pruned, pruned / channels, accuracy, asr))
    return points


def choose_depth(points: list[SweepPoint], max_accuracy_drop: float) -> int:
    """Channels to prune: stop before the first step that drops accuracy more than the margin."""
    baseline = points[0].clean_accuracy
    chosen = 0
    for point in points[1:]:
        if baseline - point.clean_accuracy > max_accuracy_drop:
            break
        chosen = point.pruned
    return chosen


def _masked_labels(head: keras.Model, features: np.ndarray, mask: np.ndarray) -> np.ndarray:
    masked = features * mask
    return predict_labels(head, masked)


class KeepChannelsPruned(keras.callbacks.Callback):
    """Re-zeroes pruned channels after every epoch, in case an optimiser moved them."""

    def __init__(self, target: keras.Model, layer_name: str, channels: Sequence[int]) -> None:
        super().__init__()
        self._target, self._layer, self._channels = target, layer_name, list(channels)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        zero_channels(self._target, self._layer, self._channels)
