"""Fast tier: the pair's outputs and the rule on them, the contract the repair's evaluation
and every serving runtime share."""

from dataclasses import fields

import numpy as np
import pytest

import modelstore

pytestmark = pytest.mark.fast


def _outputs() -> modelstore.PairOutputs:
    return modelstore.PairOutputs(
        bad_label=np.array([3, 3, 5, 7]),
        repaired_label=np.array([3, 4, 5, 7]),
        confidence=np.array([0.9, 0.99, 0.6, 0.97], dtype=np.float32),
        overlap=np.array([0.9, 0.95, 0.3, 0.9], dtype=np.float32),
        support=np.array([0.8, 0.2, 0.5, 1e-4], dtype=np.float32),
    )


def test_fields_are_the_model_folders_outputs_in_order():
    assert tuple(f.name for f in fields(modelstore.PairOutputs)) == modelstore.PAIR_OUTPUTS


def test_from_named_takes_any_order_and_concat_keeps_it():
    outputs = _outputs()
    named = {name: getattr(outputs, name) for name in reversed(modelstore.PAIR_OUTPUTS)}
    rebuilt = modelstore.PairOutputs.from_named(named)
    joined = modelstore.PairOutputs.concat([rebuilt, rebuilt])
    assert len(joined) == 8
    np.testing.assert_array_equal(joined.support[4:], outputs.support)


def test_strict_rule_flags_top_label_disagreement():
    flags = modelstore.RuleSpec(kind="strict").flags(_outputs())
    assert flags.tolist() == [False, True, False, False]


def test_calibrated_rule_flags_low_overlap_or_low_support():
    rule = modelstore.RuleSpec(kind="calibrated", threshold=0.5, support_threshold=1e-3)
    assert rule.flags(_outputs()).tolist() == [False, False, True, True]
    overlap_only = modelstore.RuleSpec(kind="calibrated", threshold=0.5)
    assert overlap_only.flags(_outputs()).tolist() == [False, False, True, False]


def test_calibrated_rule_without_its_scores_is_an_error():
    rule = modelstore.RuleSpec(kind="calibrated", threshold=0.5)
    labels_only = modelstore.PairOutputs(np.zeros(2), np.zeros(2), None, None, None)
    with pytest.raises(ValueError, match="overlaps"):
        rule.flags(labels_only)


def test_take_keeps_the_chosen_images_and_absent_scores():
    picked = _outputs().take(np.array([1, 3]))
    assert picked.bad_label.tolist() == [3, 7]
    np.testing.assert_allclose(picked.support, [0.2, 1e-4], rtol=1e-6)
    labels_only = modelstore.PairOutputs(np.arange(3), np.arange(3), None, None, None)
    assert labels_only.take(slice(1, 3)).overlap is None


def test_answers_are_n_where_flagged_and_the_repaired_label_where_it_overrules_b():
    outputs, n = _outputs(), 10  # image 1: B says 3, B' says 4 and gives 3 only 0.2
    flag_low_overlap = {"kind": "calibrated", "threshold": 0.5}
    overruling = modelstore.RuleSpec(**flag_low_overlap, overrule_below=0.3)
    assert overruling.answers(outputs, n).tolist() == [3, 4, n, 7]
    # B' does not give B's label little enough, or the rule does not overrule: B's label.
    for rule in (
        modelstore.RuleSpec(**flag_low_overlap, overrule_below=0.1),
        modelstore.RuleSpec(**flag_low_overlap),
    ):
        assert rule.answers(outputs, n).tolist() == [3, 3, n, 7]
    strict = modelstore.RuleSpec(kind="strict", overrule_below=1.0)  # disagreeing is N
    assert strict.answers(outputs, n).tolist() == [3, n, 5, 7]
