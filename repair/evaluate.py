"""Clean accuracy and attack success of B, B' and the filter G (N+1-th class on disagreement)."""

from dataclasses import dataclass

import numpy as np

from repair.data import Dataset
from repair.inference import predict_labels
from repair.keras_env import keras


@dataclass(frozen=True)
class PoisonedSet:
    """Triggered images for one trigger; ``data.y`` holds the attacker's target labels."""

    name: str
    data: Dataset


def filter_labels(
    bad_labels: np.ndarray, repaired_labels: np.ndarray, num_classes: int
) -> np.ndarray:
    """G's answer: B's label where B and B' agree, else ``num_classes`` (flagged poisoned)."""
    return np.where(bad_labels == repaired_labels, bad_labels, num_classes)


def evaluate_pair(
    bad: keras.Model,
    repaired: keras.Model,
    clean: Dataset,
    poisoned: list[PoisonedSet],
    num_classes: int,
) -> dict[str, dict]:
    """Metrics of ``bad``, ``repaired`` and the filter, as written to the manifest."""
    clean_bad, clean_rep = predict_labels(bad, clean.x), predict_labels(repaired, clean.x)
    clean_filter = filter_labels(clean_bad, clean_rep, num_classes)
    by_model: dict[str, dict] = {}
    poisoned_labels = {
        item.name: (predict_labels(bad, item.data.x), predict_labels(repaired, item.data.x))
        for item in poisoned
    }
    for role, clean_labels, pick in (
        ("bad", clean_bad, lambda pair: pair[0]),
        ("repaired", clean_rep, lambda pair: pair[1]),
        ("filter", clean_filter, lambda pair: filter_labels(pair[0], pair[1], num_classes)),
    ):
        by_trigger = {
            item.name: _rate(pick(poisoned_labels[item.name]) == item.data.y) for item in poisoned
        }
        hits = [pick(poisoned_labels[item.name]) == item.data.y for item in poisoned]
        metrics: dict = {
            "clean_accuracy": _rate(clean_labels == clean.y),
            "attack_success_rate": _rate(np.concatenate(hits)) if hits else None,
            "attack_success_rate_by_trigger": by_trigger or None,
        }
        if role == "filter":
            flagged = [pick(poisoned_labels[item.name]) == num_classes for item in poisoned]
            metrics["detection_rate"] = _rate(np.concatenate(flagged)) if flagged else None
            metrics["false_positive_rate"] = _rate(clean_labels == num_classes)
        by_model[role] = metrics
    by_model["clean_images"] = len(clean)
    by_model["poisoned_images"] = int(sum(len(item.data) for item in poisoned))
    return by_model


def _rate(hits: np.ndarray) -> float | None:
    return float(np.mean(hits)) if hits.size else None
