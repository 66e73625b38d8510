"""Clean accuracy and attack success of B, B' and the filter G, from the two nets' outputs."""

from dataclasses import dataclass

import numpy as np

from repair.data import Dataset
from repair.filter_rule import STRICT, FilterRule, calibrate, filter_labels
from repair.inference import predict_scores
from repair.keras_env import keras

OPERATING_BUDGETS = (0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1)
"""False-flag budgets at which the calibrated rule's trade-off is reported."""


@dataclass(frozen=True)
class PoisonedSet:
    """Triggered images for one trigger; ``data.y`` holds the attacker's target labels."""

    name: str
    data: Dataset


@dataclass(frozen=True)
class PairOutputs:
    """Softmax outputs of B and B' on one set of images, with that set's labels."""

    bad: np.ndarray
    repaired: np.ndarray
    labels: np.ndarray

    def labels_of(self) -> tuple[np.ndarray, np.ndarray]:
        """B's and B''s top labels."""
        return self.bad.argmax(axis=1), self.repaired.argmax(axis=1)


def pair_outputs(bad: keras.Model, repaired: keras.Model, data: Dataset) -> PairOutputs:
    """Run both nets on ``data``."""
    return PairOutputs(predict_scores(bad, data.x), predict_scores(repaired, data.x), data.y)


def evaluate_outputs(
    clean: PairOutputs,
    poisoned: dict[str, PairOutputs],
    num_classes: int,
    rule: FilterRule,
) -> dict[str, dict]:
    """Metrics of B, B', G under ``rule`` and G under the strict rule, as in the manifest."""
    roles = {
        "bad": lambda o: o.bad.argmax(axis=1),
        "repaired": lambda o: o.repaired.argmax(axis=1),
        "filter": lambda o: filter_labels(rule, o.bad, o.repaired, num_classes),
        "filter_strict": lambda o: filter_labels(STRICT, o.bad, o.repaired, num_classes),
    }
    metrics: dict[str, dict] = {}
    for role, labels_of in roles.items():
        clean_labels = labels_of(clean)
        answers = {name: labels_of(outputs) for name, outputs in poisoned.items()}
        hits = {name: answers[name] == poisoned[name].labels for name in poisoned}
        entry: dict = {
            "clean_accuracy": _rate(clean_labels == clean.labels),
            "attack_success_rate": _rate(np.concatenate(list(hits.values()))) if hits else None,
            "attack_success_rate_by_trigger": {n: _rate(h) for n, h in hits.items()} or None,
        }
        if role.startswith("filter"):
            stopped = [a == num_classes for a in answers.values()]
            entry["detection_rate"] = _rate(np.concatenate(stopped)) if stopped else None
            entry["false_positive_rate"] = _rate(clean_labels == num_classes)
        metrics[role] = entry
    metrics["filter"]["rule"] = rule.kind
    metrics["clean_images"] = int(len(clean.labels))
    metrics["poisoned_images"] = int(sum(len(o.labels) for o in poisoned.values()))
    return metrics


def operating_points(
    held_out: PairOutputs,
    evaluation: PairOutputs,
    poisoned: dict[str, PairOutputs],
    num_classes: int,
    temperature: float = 1.0,
    budgets: tuple[float, ...] = OPERATING_BUDGETS,
) -> list[dict]:
    """The calibrated rule at each budget: its threshold (from ``held_out`` alone), then
    false flags and clean accuracy on ``evaluation`` and, when given, detection and attack
    success on ``poisoned`` (for the report: nothing here feeds back into a decision)."""
    points = []
    for budget in budgets:
        rule = calibrate(held_out.bad, held_out.repaired, budget, temperature)
        metrics = evaluate_outputs(evaluation, poisoned, num_classes, rule)["filter"]
        held_flags = filter_labels(rule, held_out.bad, held_out.repaired, num_classes)
        points.append(
            {
                "false_flag_budget": budget,
                "threshold": rule.threshold,
                "held_out_false_positive_rate": _rate(held_flags == num_classes),
                "false_positive_rate": metrics["false_positive_rate"],
                "clean_accuracy": metrics["clean_accuracy"],
                "detection_rate": metrics["detection_rate"],
                "attack_success_rate": metrics["attack_success_rate"],
            }
        )
    return points


def _rate(hits: np.ndarray) -> float | None:
    return float(np.mean(hits)) if hits.size else None
