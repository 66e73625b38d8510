"""Clean accuracy and attack success of B, B' and the filter G, from the two nets' outputs."""

from dataclasses import dataclass

import numpy as np

from modelstore import PairOutputs
from repair.data import Dataset
from repair.export import OnnxGraph
from repair.filter_rule import STRICT, SUPPORT_CEILING, FilterRule, calibrate_held_out

OPERATING_BUDGETS = (0.0025, 0.005, 0.01, 0.0125, 0.015, 0.0175, 0.02, 0.03, 0.05, 0.1)
"""False-flag budgets at which the calibrated rule's trade-off is reported."""


@dataclass(frozen=True)
class PoisonedSet:
    """Triggered images for one trigger; ``data.y`` holds the attacker's target labels."""

    name: str
    data: Dataset


@dataclass(frozen=True)
class LabelledOutputs:
    """The pair graph's outputs on one set of images, with that set's true labels (the
    attacker's targets for a poisoned set)."""

    outputs: PairOutputs
    labels: np.ndarray

    def answers(self, rule: FilterRule, num_classes: int) -> np.ndarray:
        """G's answers under ``rule``: ``num_classes`` where it flags, else B's label or
        B''s where B' overrules it."""
        return rule.answers(self.outputs, num_classes)


def pair_outputs(pair: OnnxGraph, data: Dataset) -> LabelledOutputs:
    """Run the exported pair graph (:func:`repair.export.pair_graph`) on ``data``."""
    return LabelledOutputs(PairOutputs.from_named(pair.run(data.x)), data.y)


def evaluate_outputs(
    clean: LabelledOutputs,
    poisoned: dict[str, LabelledOutputs],
    num_classes: int,
    rule: FilterRule,
) -> dict[str, dict]:
    """Metrics of B, B', G under ``rule`` and G under the strict rule, as in the manifest."""
    roles = {
        "bad": lambda o: o.outputs.bad_label,
        "repaired": lambda o: o.outputs.repaired_label,
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
            overruled = (clean_labels != num_classes) & (clean_labels != clean.outputs.bad_label)
            entry["overruled_rate"] = _rate(overruled)
        metrics[role] = entry
    metrics["filter"]["rule"] = rule.kind
    metrics["clean_images"] = int(len(clean.labels))
    metrics["poisoned_images"] = int(sum(len(o.labels) for o in poisoned.values()))
    return metrics


def operating_points(
    held_out: LabelledOutputs,
    evaluation: LabelledOutputs,
    poisoned: dict[str, LabelledOutputs],
    num_classes: int,
    temperature: float,
    use_support: bool,
    budgets: tuple[float, ...] = OPERATING_BUDGETS,
    support_ceiling: float = SUPPORT_CEILING,
    overrule_budget: float | None = None,
) -> list[dict]:
    """The calibrated rule at each budget: its threshold (from ``held_out`` alone), then
    false flags and clean accuracy on ``evaluation`` and, when given, detection and attack
    success on ``poisoned`` (for the report: nothing here feeds back into a decision).
    The overlaps are at ``temperature``; ``use_support`` as in the repair's options."""
    points = []
    for budget in budgets:
        rule = calibrate_held_out(
            held_out.outputs,
            held_out.labels,
            budget,
            temperature,
            use_support,
            support_ceiling,
            overrule_budget,
        )
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
