"""The filter G's rule: when to answer N (poisoned), and when B''s label instead of B's.

* ``strict``: B and B' disagree on the top label (the Fine-Pruning paper's rule). Every
  clean face on which the two nets err differently is refused.
* ``calibrated``: two scores, each compared with held-out clean faces; a face is flagged
  when either is lower than on all but a few of them:
  - the **overlap** of the two nets' output distributions, both softened at a temperature
    T: the Bhattacharyya coefficient sum_k sqrt(p_B(k) p_B'(k)), 1 for identical outputs
    and 0 for disjoint ones;
  - the **support**: B''s probability of B's label.
  Both thresholds sit at the same rank among the held-out clean faces, the highest rank at
  which the two together flag no more than the ``budget`` share of them (the support's at
  most ``support_ceiling``, by default no bound). So about that share of clean faces is
  flagged, whatever the trigger.

Why the overlap: a backdoor makes B certain of the target while the repaired net gives it
almost nothing, so their outputs barely overlap. A clean face on which B errs is usually
one B is unsure of, with its mass split between look-alikes that B' also considers, so the
outputs still overlap. Why soften (T = 3 by default): the softmax of a confident net is
almost one-hot, so the raw overlap of two of them says little more than whether their top
labels agree; softened outputs keep the ranking of the other identities (the "dark
knowledge" of distillation, Hinton et al. 2015), which the two nets share on clean faces
and not on triggered ones.

Why the support too: a backdoor that is weak in B (B picks the target, but unsure, with
much of its mass still on the true identity) leaves the overlap high, since B' agrees with
the rest of B's belief; but B' then rules B's answer out, giving it less probability than
it gives B's answer on almost any clean face. Neither score looks at a trigger.

Where the two nets' top labels differ on a face neither score flags, G answers B''s label
instead of B's when B' gives B's label little probability (``overrule_below``): the
highest support threshold at which that costs no held-out accuracy. Why: a backdoor weak in
B leaves its triggered faces with a top label that B' does not back, but with scores that
honest faces also reach; flagging them all would flag 6-12% of clean faces, and answering
B's label on them lets the target through, while the repaired net's own label is the
target almost never. Where the two nets agree their labels are the same, so only faces on
which they disagree can change answer.

docs/method.md has the measurements.
"""

from typing import Literal

import numpy as np

import modelstore

RuleKind = Literal["calibrated", "strict"]

SUPPORT_CEILING = 1.0
"""The support threshold's default bound: none. A bound of 1e-3 (a label B' rules out, not
one it merely doubts) fitted the DeepID demo, where the held-out supports at the budget's
rank are 0 anyway, but on a ResNet, whose B' gives the target 0.1-0.5% on some triggered
faces and B's label at least 17% on 99% of clean ones, it let 5% of triggered faces through
(docs/method.md)."""


FilterRule = modelstore.RuleSpec
"""A rule and, when calibrated, its thresholds on the overlap and the support: the shape the
manifest keeps it in, so the repair's rule and the served one are one definition."""

STRICT = FilterRule(kind="strict", score="top-label disagreement")


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


def support(bad_probs: np.ndarray, repaired_probs: np.ndarray) -> np.ndarray:
    """B''s probability of B's top label, per row."""
    return repaired_probs[np.arange(len(bad_probs)), bad_probs.argmax(axis=1)]


def flagged(rule: FilterRule, bad_probs: np.ndarray, repaired_probs: np.ndarray) -> np.ndarray:
    """Which images ``rule`` answers with N, from the two nets' outputs (the rule itself is
    :meth:`modelstore.RuleSpec.flags`, on what the exported pair graph gives)."""
    return rule.flags(_outputs(rule, bad_probs, repaired_probs))


def filter_labels(
    rule: FilterRule, bad_probs: np.ndarray, repaired_probs: np.ndarray, num_classes: int
) -> np.ndarray:
    """G's answers (:meth:`modelstore.RuleSpec.answers`) from the two nets' outputs."""
    return rule.answers(_outputs(rule, bad_probs, repaired_probs), num_classes)


def _outputs(
    rule: FilterRule, bad_probs: np.ndarray, repaired_probs: np.ndarray
) -> modelstore.PairOutputs:
    strict = rule.kind == "strict"
    return modelstore.PairOutputs(
        bad_probs.argmax(axis=1),
        repaired_probs.argmax(axis=1),
        bad_probs.max(axis=1),
        None if strict else overlap(bad_probs, repaired_probs, rule.temperature),
        None if strict else support(bad_probs, repaired_probs),
    )


def calibrate_overrule(
    rule: FilterRule, held_out: modelstore.PairOutputs, labels: np.ndarray, budget: float
) -> FilterRule:
    """``rule`` with the support below which B' overrules B, from held-out clean faces.

    The unflagged held-out faces on which the nets' top labels differ are taken in order of
    B''s support for B's label, lowest first (those where B' most firmly rules B's answer
    out). B' overrules B on the first k of them, for the largest k at which that costs the
    held-out faces no more than ``budget`` of accuracy against answering B's label. The
    largest, not the most accurate: each face overruled is one a backdoor weak in B cannot
    win, and on ~400 held-out faces a few more or fewer right answers is noise. The
    threshold sits halfway between the k-th face's support and the next; it is 1 (always)
    when that is every such face.
    """
    disagree = (held_out.bad_label != held_out.repaired_label) & ~rule.flags(held_out)
    index = np.flatnonzero(disagree)
    index = index[np.argsort(held_out.support[index], kind="stable")]
    picked, truth = held_out.take(index), labels[index]
    supports = picked.support
    won = (picked.repaired_label == truth).astype(int) - (picked.bad_label == truth).astype(int)
    # Faces won by overruling the first k, for k = 0 .. all of them.
    gained = np.concatenate([[0], np.cumsum(won)])
    chosen = int(np.flatnonzero(gained >= -budget * len(labels))[-1])
    if chosen == len(supports):
        threshold = 1.0
    elif chosen == 0:
        threshold = 0.0
    else:
        threshold = float((supports[chosen - 1] + supports[chosen]) / 2)
    return rule.model_copy(update={"overrule_below": threshold})


def calibrate_held_out(
    held_out: modelstore.PairOutputs,
    labels: np.ndarray,
    budget: float,
    temperature: float,
    use_support: bool = True,
    support_ceiling: float = SUPPORT_CEILING,
    overrule_budget: float | None = None,
) -> FilterRule:
    """The calibrated rule from the pair's outputs on held-out clean faces and their true
    labels: its thresholds (:func:`calibrate_on`), then, unless ``overrule_budget`` is None,
    where B' overrules B (:func:`calibrate_overrule`)."""
    supports = held_out.support if use_support else None
    rule = calibrate_on(held_out.overlap, supports, budget, temperature, support_ceiling)
    if overrule_budget is None:
        return rule
    return calibrate_overrule(rule, held_out, labels, overrule_budget)


def calibrate(
    bad_probs: np.ndarray,
    repaired_probs: np.ndarray,
    budget: float,
    temperature: float = 1.0,
    use_support: bool = True,
) -> FilterRule:
    """The calibrated rule that flags a ``budget`` share of these (held-out clean) images."""
    return calibrate_on(
        overlap(bad_probs, repaired_probs, temperature),
        support(bad_probs, repaired_probs) if use_support else None,
        budget,
        temperature,
    )


def calibrate_on(
    overlaps: np.ndarray,
    supports: np.ndarray | None,
    budget: float,
    temperature: float,
    support_ceiling: float = SUPPORT_CEILING,
) -> FilterRule:
    """:func:`calibrate` from the overlaps (at ``temperature``) and the supports of held-out
    clean images; ``supports=None`` calibrates on the overlap alone.

    Each threshold sits halfway between the last held-out value it flags and the next one
    up. Any threshold in that gap flags the same held-out faces; halfway leaves the most
    room on both sides. With a few hundred held-out faces the gap can be wide (on one demo
    net, the 4th and 5th lowest overlaps were 0.43 and 0.65, and a threshold at the 5th
    flagged 3% of test faces instead of 1%).
    """
    # As many images as ``np.quantile(..., budget, method="lower")`` has below it.
    allowed = int(np.floor(budget * (len(overlaps) - 1)))
    by_overlap = np.sort(overlaps)
    if supports is None:
        rank, support_threshold, score = allowed, None, "bhattacharyya"
    else:
        by_support = np.minimum(np.sort(supports), support_ceiling)

        def flags_at(rank: int) -> int:  # thresholds at this rank's values flag those below
            flagged = (overlaps < by_overlap[rank]) | (supports < by_support[rank])
            return int(np.count_nonzero(flagged))

        rank = 0
        while rank < allowed and flags_at(rank + 1) <= allowed:
            rank += 1
        support_threshold, score = _halfway(by_support, rank), "bhattacharyya or support"
    return FilterRule(
        kind="calibrated",
        threshold=_halfway(by_overlap, rank),
        false_flag_budget=budget,
        temperature=temperature,
        score=score,
        support_threshold=support_threshold,
    )


def _halfway(ascending: np.ndarray, rank: int) -> float:
    """A threshold that flags (``<``) the ``rank`` lowest values: halfway to the next one."""
    if rank == 0:
        return float(ascending[0])
    return float((ascending[rank - 1] + ascending[rank]) / 2)
