"""The filter G's rule: when to answer N (poisoned) instead of B's label.

* ``strict``: B and B' disagree on the top label (the Fine-Pruning paper's rule). Every
  clean face on which the two nets err differently is refused.
* ``calibrated``: the two nets' output distributions, both softened at a temperature T,
  overlap less than a threshold. The overlap is the Bhattacharyya coefficient,
  sum_k sqrt(p_B(k) p_B'(k)), 1 for identical outputs and 0 for disjoint ones. The
  threshold is the ``budget`` quantile of the overlap on held-out clean faces, so about that
  share of clean faces is flagged, whatever the trigger.

Why the overlap rather than B''s probability of B's label: a backdoor makes B certain of
the target while the repaired net gives it almost nothing, so their outputs barely
overlap. A clean face on which B errs is usually one B is unsure of, with its mass split
between look-alikes that B' also considers, so the outputs still overlap. B''s probability
of B's label alone cannot tell the second case from a triggered face of someone who looks a
little like the target. Why soften (T = 3 by default): the softmax of a confident net is
almost one-hot, so the raw overlap of two of them says little more than whether their top
labels agree; softened outputs keep the ranking of the other identities (the "dark
knowledge" of distillation, Hinton et al. 2015), which the two nets share on clean faces
and not on triggered ones. docs/method.md has the measurements.
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
    temperature: float = 1.0
    score: str = "bhattacharyya"

    def to_dict(self) -> dict:
        return asdict(self)


STRICT = FilterRule("strict", score="top-label disagreement")


def soften(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax outputs re-tempered: ``softmax(log(p) / T)``; T > 1 spreads the mass."""
    if temperature == 1.0:
        return probabilities
    logits = np.log(np.clip(probabilities, 1e-30, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    soft = np.exp(logits)
    return soft / soft.sum(axis=1, keepdims=True)


def overlap(
    bad_probs: np.ndarray, repaired_probs: np.ndarray, temperature: float = 1.0
) -> np.ndarray:
    """Bhattacharyya coefficient of each row's two output distributions, softened at
    ``temperature``, in [0, 1]."""
    product = soften(bad_probs, temperature) * soften(repaired_probs, temperature)
    return np.sqrt(np.clip(product, 0, None)).sum(axis=1)


def flagged(rule: FilterRule, bad_probs: np.ndarray, repaired_probs: np.ndarray) -> np.ndarray:
    """Which images ``rule`` answers with N."""
    if rule.kind == "strict":
        return bad_probs.argmax(axis=1) != repaired_probs.argmax(axis=1)
    return overlap(bad_probs, repaired_probs, rule.temperature) < rule.threshold


def filter_labels(
    rule: FilterRule, bad_probs: np.ndarray, repaired_probs: np.ndarray, num_classes: int
) -> np.ndarray:
    """G's answers: B's label, or ``num_classes`` where ``rule`` flags the image."""
    return np.where(flagged(rule, bad_probs, repaired_probs), num_classes, bad_probs.argmax(axis=1))


def calibrate(
    bad_probs: np.ndarray, repaired_probs: np.ndarray, budget: float, temperature: float = 1.0
) -> FilterRule:
    """The calibrated rule that flags a ``budget`` share of these (held-out clean) images."""
    scores = overlap(bad_probs, repaired_probs, temperature)
    threshold = float(np.quantile(scores, budget, method="lower"))
    # ``< threshold`` flags what lies strictly below the budget's quantile.
    return FilterRule("calibrated", threshold, budget, temperature)
