"""``manifest.json``: what a repair wrote about a model version, typed.

The repair builds a :class:`Manifest` and writes it; the service reads it back. Sections
that only the report needs (parameters, the pruning sweep, timings) stay plain JSON
objects; what the service acts on (shapes, the filter rule, file hashes) is typed.
Unknown keys are kept, so an older service reads a newer manifest.
"""

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelstore.outputs import PairOutputs


class ManifestError(Exception):
    """The manifest cannot be read or does not describe a servable pair."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow")


class RuleSpec(_Section):
    """A filter rule as the repair made it: the one shape of a rule in a manifest."""

    kind: Literal["calibrated", "strict"] = "strict"
    threshold: float | None = None
    """The calibrated rule flags an overlap of the two nets' outputs below this."""
    false_flag_budget: float | None = None
    temperature: float = 1.0
    """Both outputs are softened at this temperature before their overlap is measured."""
    score: str = "top-label disagreement"
    support_threshold: float | None = None
    """The calibrated rule also flags B''s probability of B's label below this (if set)."""
    overrule_below: float | None = None
    """Where the two nets' top labels differ on a face the rule does not flag, G answers
    B''s label when B''s probability of B's label is below this (1: always), else B's."""

    def answers(self, outputs: PairOutputs, poisoned_label: int) -> np.ndarray:
        """G's answer per image: ``poisoned_label`` (N) where the rule flags it; else B's
        label, or B''s where B' overrules it. The one place G's answer is made."""
        labels = outputs.bad_label
        if self.overrule_below is not None and self.kind == "calibrated":
            if outputs.support is None:
                raise ValueError("overruling needs the supports")
            overruled = (outputs.bad_label != outputs.repaired_label) & (
                outputs.support < self.overrule_below
            )
            labels = np.where(overruled, outputs.repaired_label, labels)
        return np.where(self.flags(outputs), poisoned_label, labels)

    def flags(self, outputs: PairOutputs) -> np.ndarray:
        """Which images of the batch this rule answers with N: the one implementation of
        the rule, which the repair evaluates and every runtime serves."""
        if self.kind == "strict":
            return outputs.bad_label != outputs.repaired_label
        if self.threshold is None or outputs.overlap is None:
            raise ValueError("the calibrated rule needs its threshold and the overlaps")
        flags = outputs.overlap < self.threshold
        if self.support_threshold is not None:
            if outputs.support is None:
                raise ValueError("this calibrated rule needs the supports")
            flags |= outputs.support < self.support_threshold
        return flags


class FilterSpec(RuleSpec):
    """The filter rule the repair recommends, and its calibration on held-out clean faces."""

    calibrated: RuleSpec | None = None
    """The calibrated rule, also when ``kind`` is strict (so a service may switch to it)."""
    operating_points: list[dict[str, Any]] = []

    def calibrated_rule(self) -> RuleSpec | None:
        """The calibrated rule: this one when it is calibrated, else the one kept beside it."""
        return self if self.kind == "calibrated" else self.calibrated


class RoleMetrics(_Section):
    """Clean accuracy and attack success of one classifier (B, B', pruned B, or a filter)."""

    clean_accuracy: float | None = None
    attack_success_rate: float | None = None
    attack_success_rate_by_trigger: dict[str, float | None] | None = None
    detection_rate: float | None = None
    false_positive_rate: float | None = None
    overruled_rate: float | None = None
    """A filter's: the share of clean faces answered with B''s label instead of B's."""


class Metrics(_Section):
    bad: RoleMetrics
    repaired: RoleMetrics
    filter: RoleMetrics
    filter_strict: RoleMetrics | None = None
    pruned_only: RoleMetrics | None = None
    filter_pruned_only: RoleMetrics | None = None
    evaluated_on: str | None = None
    clean_images: int | None = None
    poisoned_images: int | None = None


class Manifest(_Section):
    """A model version as the repair published it."""

    name: str
    version: str
    created_at: str | None = None
    published_by: str | None = None
    """Who published it: the command line, or the admin token's id (never the token)."""
    num_classes: int = Field(gt=0)
    poisoned_label: int
    input_shape: tuple[int, int, int]
    filter: FilterSpec = FilterSpec()
    metrics: Metrics | None = None
    files: dict[str, str] = {}
    """SHA-256 of each file of the version, by file name."""
    inputs: dict[str, Any] = {}
    parameters: dict[str, Any] = {}
    pruning: dict[str, Any] = {}
    fine_tuning: dict[str, Any] = {}
    data: dict[str, Any] = {}
    timings_s: dict[str, float] = {}
    peak_memory_mib: float | None = None
    versions: dict[str, str] = {}
    demo: dict[str, Any] | None = None
    """How the demo material was made (demo model folders only)."""

    def write(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=2, exclude_none=False) + "\n")


def read_manifest(path: Path) -> Manifest | None:
    """The manifest at ``path``; None when there is none (a hand-made folder)."""
    if not path.is_file():
        return None
    try:
        return Manifest.model_validate(json.loads(path.read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: unreadable manifest ({exc})") from exc
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise ManifestError(f"{path}: invalid manifest ({problems})") from exc
