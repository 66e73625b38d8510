"""Clean accuracy and attack success of B, B' and the filter G, from the two nets' outputs."""

from dataclasses import dataclass

import numpy as np

from repair.data import Dataset
from repair.export import OnnxGraph
from repair.filter_rule import STRICT, SUPPORT_CEILING, FilterRule, calibrate_on, flagged_by

OPERATING_BUDGETS = (0.0025, 0.005, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.03, 0.05, 0.1)
"""False-flag budgets at which the calibrated rule's trade-off is reported."""


@dataclass(frozen=True)
class PoisonedSet:
    """Triggered images for one trigger; ``data.y`` holds the attacker's target labels."""

    name: str
    data: Dataset


@dataclass(frozen=True)
class PairOutputs:
    """What the filter needs of B and B' on one set of images (top labels, the overlap of
    their outputs at the filter's temperature, the support), with that set's true labels."""

    bad: np.ndarray
    repaired: np.ndarray
    overlap: np.ndarray | None
    support: np.ndarray | None
    labels: np.ndarray

    def answers(self, rule: FilterRule, num_classes: int) -> np.ndarray:
        """G's answers under ``rule``: B's label, or ``num_classes`` where it flags."""
        if rule.kind != "strict" and self.overlap is None:
            raise ValueError("the calibrated rule needs the overlaps")
        flags = flagged_by(rule, self.bad, self.repaired, self.overlap, self.support)
        return np.where(flags, num_classes, self.bad)


def pair_outputs(pair: OnnxGraph, data: Dataset) -> PairOutputs:
    """Run the exported pair graph (:func:`repair.export.pair_graph`) on ``data``."""
    got = pair.run(data.x)
    return PairOutputs(
        got["bad_label"], got["repaired_label"], got["overlap"], got["support"], data.y
    )


def evaluate_outputs(
    clean: PairOutputs,
    poisoned: dict[str, PairOutputs],
    num_classes: int,
    rule: FilterRule,
) -> dict[str, dict]:
    """Metrics of B, B', G under ``rule`` and G under the strict rule, as in the manifest."""
    roles = {
        "bad": lambda o: o.bad,
        "repaired": lambda o: o.repaired,
        "filter": lambda o: o.answers(rule, num_classes),
        "filter_strict": lambda o: o.answers(STRICT, num_classes),
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
    temperature: float,
    use_support: bool,
    budgets: tuple[float, ...] = OPERATING_BUDGETS,
    support_ceiling: float = SUPPORT_CEILING,
) -> list[dict]:
    """The calibrated rule at each budget: its threshold (from ``held_out`` alone), then
    false flags and clean accuracy on ``evaluation`` and, when given, detection and attack
    success on ``poisoned`` (for the report: nothing here feeds back into a decision).
    The overlaps are at ``temperature``; ``use_support`` as in the repair's options."""
    points = []
    for budget in budgets:
        supports = held_out.support if use_support else None
        rule = calibrate_on(held_out.overlap, supports, budget, temperature, support_ceiling)
        metrics = evaluate_outputs(evaluation, poisoned, num_classes, rule)["filter"]
        held_flags = held_out.answers(rule, num_classes)
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
