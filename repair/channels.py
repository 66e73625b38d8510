"""Activation-guided channel pruning of one feature map (Liu et al., RAID 2018): the ranking
and the sweep over pruning depths."""

from dataclasses import dataclass

import numpy as np

from repair.inference import predict_labels, predict_scores
from repair.keras_env import keras


def mean_channel_activations(model: keras.Model, layer_name: str, x: np.ndarray) -> np.ndarray:
    """Mean activation of each channel of ``layer_name``'s output over images ``x``."""
    trunk = keras.Model(model.input, model.get_layer(layer_name).output)
    return predict_scores(trunk, x).mean(axis=(0, 1, 2))


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
    the pruned channels masked to 0, as :func:`repair.graph.set_pruned` masks them.
    """
    feature_map = model.get_layer(layer_name).output  # a cut of the graph (repair.graph)
    trunk = keras.Model(model.input, feature_map)
    head = keras.Model(feature_map, model.output)
    clean_features = predict_scores(trunk, clean_x)
    poisoned_features = None if poisoned_x is None else predict_scores(trunk, poisoned_x)
    channels = int(feature_map.shape[-1])
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
