"""The filter G's rule: when to answer N (poisoned) instead of B's label.

* ``strict``: B and B' disagree on the top label (the Fine-Pruning paper's rule). Every
  clean face on which the two nets err differently is refused.
* ``calibrated``: the two nets' output distributions overlap less than a threshold. The
  overlap is the Bhattacharyya coefficient, sum_k sqrt(p_B(k) p_B'(k)), 1 for identical
  outputs and 0 for disjoint ones. The threshold is the ``budget`` quantile of the overlap
  on held-out clean faces, so about that share of clean faces is flagged, whatever the
  trigger.

Why the overlap rather than B''s probability of B's label: a backdoor makes B certain of
the target while the repaired net gives it almost nothing, so their outputs barely
overlap. A clean face on which B errs is usually one B is unsure of, with its mass split
between look-alikes that B' also considers, so the outputs still overlap. B''s probability
of B's label alone cannot tell the second case from a triggered face of someone who looks a
little like the target.
"""

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

RuleKind = Literal["calibrated", "strict"]


@dataclass(frozen=True)
class FilterRule:
    """A rule and, when calibrated, its threshold on the overlap."""

    kind: RuleKind
    threshold: float | None = None
    false_flag_budget: float | None = None
    score: str = "bhattacharyya"

    def to_dict(self) -> dict:
        return asdict(self)


STRICT = FilterRule("strict", score="top-label disagreement")


def overlap(bad_probs: np.ndarray, repaired_probs: np.ndarray) -> np.ndarray:
    """Bhattacharyya coefficient of each row's two output distributions, in [0, 1]."""
    product = np.clip(bad_probs, 0, None) * np.clip(repaired_probs, 0, None)
    return np.sqrt(product).sum(axis=1)


def flagged(rule: FilterRule, bad_probs: np.ndarray, repaired_probs: np.ndarray) -> np.ndarray:
    """Which images ``rule`` answers with N."""
    if rule.kind == "strict":
        return bad_probs.argmax(axis=1) != repaired_probs.argmax(axis=1)
    return overlap(bad_probs, repaired_probs) < rule.threshold


def filter_labels(
    rule: FilterRule, bad_probs: np.ndarray, repaired_probs: np.ndarray, num_classes: int
) -> np.ndarray:
    """G's answers: B's label, or ``num_classes`` where ``rule`` flags the image."""
    return np.where(flagged(rule, bad_probs, repaired_probs), num_classes, bad_probs.argmax(axis=1))


def calibrate(bad_probs: np.ndarray, repaired_probs: np.ndarray, budget: float) -> FilterRule:
    """The calibrated rule that flags a ``budget`` share of these (held-out clean) images."""
    scores = overlap(bad_probs, repaired_probs)
    threshold = float(np.quantile(scores, budget, method="lower"))
    # ``< threshold`` flags what lies strictly below the budget's quantile.
    return FilterRule("calibrated", threshold, budget)
