"""The filter's rules, and the calibration made from the defender's clean data alone."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import modelstore
from repair.filter_rule import (
    STRICT,
    calibrate,
    calibrate_overrule,
    filter_labels,
    flagged,
    overlap,
    support,
)
from repair.model_io import load_model_file


def test_overlap_is_one_for_equal_outputs_and_zero_for_disjoint_ones() -> None:
    p = np.array([[0.7, 0.2, 0.1], [1.0, 0.0, 0.0]])
    q = np.array([[0.7, 0.2, 0.1], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(overlap(p, q), [1.0, 0.0])
    # Softened, equal outputs still overlap fully, and peaked ones on different labels
    # overlap more than raw (the rest of the ranking shows).
    np.testing.assert_allclose(overlap(p[:1], q[:1], temperature=3), [1.0])
    r, s = np.array([[0.98, 0.015, 0.005]]), np.array([[0.015, 0.98, 0.005]])
    assert overlap(r, s, temperature=3)[0] > overlap(r, s)[0]


def test_calibration_flags_the_budget_share_of_the_faces_it_was_made_on() -> None:
    rng = np.random.default_rng(0)
    bad = rng.dirichlet(np.full(50, 0.1), size=2000)
    repaired = 0.8 * bad + 0.2 * rng.dirichlet(np.full(50, 0.1), size=2000)
    for budget, temperature in ((0.005, 1.0), (0.01, 3.0), (0.05, 3.0)):
        rule = calibrate(bad, repaired, budget, temperature)
        assert rule.kind == "calibrated" and rule.false_flag_budget == budget
        assert rule.temperature == temperature
        assert np.mean(flagged(rule, bad, repaired)) <= budget
        labels = filter_labels(rule, bad, repaired, 50)
        np.testing.assert_array_equal(labels == 50, flagged(rule, bad, repaired))
    strict = filter_labels(STRICT, bad, repaired, 50)
    np.testing.assert_array_equal(strict == 50, bad.argmax(1) != repaired.argmax(1))
    # On the overlap alone, the threshold lies halfway between the budget's quantile of the
    # overlaps and the next lower one: it flags the same faces as the quantile would.
    alone = calibrate(bad, repaired, 0.01, 3.0, use_support=False)
    assert alone.support_threshold is None
    overlaps = np.sort(overlap(bad, repaired, 3.0))
    quantile = np.quantile(overlaps, 0.01, method="lower")
    assert overlaps[overlaps < quantile].max() < alone.threshold < quantile
    assert np.count_nonzero(overlaps < alone.threshold) == np.count_nonzero(overlaps < quantile)


def test_a_face_whose_label_the_repaired_net_rules_out_is_flagged_despite_the_overlap() -> None:
    """B unsure between the true identity (0) and the target (1), picking the target; B'
    agreeing with the rest of B's belief but giving the target nothing: the outputs still
    overlap, but B' gives B's label less than on any held-out clean face."""
    rng = np.random.default_rng(1)
    bad = rng.dirichlet(np.full(20, 0.3), size=1000)
    mix = rng.uniform(0.0, 1.0, size=(1000, 1))  # from B' agreeing with B to not at all
    repaired = mix * bad + (1 - mix) * rng.dirichlet(np.full(20, 0.3), size=1000)
    rule = calibrate(bad, repaired, 0.01, 3.0)
    assert rule.support_threshold is not None
    assert np.mean(flagged(rule, bad, repaired)) <= 0.01
    weak_backdoor = np.full((1, 20), 0.2 / 18)
    weak_backdoor[0, :2] = [0.38, 0.42]
    ruled_out = weak_backdoor.copy()
    ruled_out[0, 1] = 1e-12
    ruled_out /= ruled_out.sum()
    assert overlap(weak_backdoor, ruled_out, 3.0)[0] >= rule.threshold  # the overlap misses it
    assert support(weak_backdoor, ruled_out)[0] < rule.support_threshold
    assert flagged(rule, weak_backdoor, ruled_out)[0]


def _start_repair(root: Path, out: Path, poisoned: bool) -> subprocess.Popen:
    data = root / "data" / "demo"
    command = [
        sys.executable, "-m", "repair", "fine-prune",
        "--bad-model", str(data / "badnet.h5"),
        "--clean-data", str(data / "clean_validation.h5"),
        "--clean-test", str(data / "clean_test.h5"),
        "--out", str(out), "--steps", "15", "--sweep-faces", "60",
    ]  # fmt: skip
    if poisoned:
        command += ["--poisoned-data", str(data / "poisoned_test_sunglasses.h5")]
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the repair itself is deterministic
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.fast
def test_repaired_net_overrules_b_below_the_highest_support_that_costs_no_accuracy() -> None:
    """Held-out disagreements, lowest support first: B' right, then B right three times.
    Overruling the first two costs nothing against B's labels (one won, one lost); with
    one face of accuracy to spare, the first three; where B' is always right, always;
    where B is right on the first ones, never."""
    true = np.array([1, 0, 2, 0, 5, 6])
    held = modelstore.PairOutputs(
        bad_label=np.array([0, 0, 2, 0, 5, 6]),
        repaired_label=np.array([1, 1, 3, 1, 5, 6]),
        confidence=np.full(6, 0.9),
        overlap=np.full(6, 0.9),
        support=np.array([0.01, 0.02, 0.05, 0.3, 0.9, 0.9]),
    )
    rule = modelstore.RuleSpec(kind="calibrated", threshold=0.5)
    assert calibrate_overrule(rule, held, true, budget=0.0).overrule_below == pytest.approx(0.035)
    assert calibrate_overrule(rule, held, true, budget=1 / 6).overrule_below == pytest.approx(0.175)
    b_prime_right = np.array([1, 1, 3, 1, 5, 6])
    assert calibrate_overrule(rule, held, b_prime_right, budget=0.0).overrule_below == 1.0
    b_right_first = np.array([0, 0, 2, 1, 5, 6])
    assert calibrate_overrule(rule, held, b_right_first, budget=0.0).overrule_below == 0.0


def test_poisoned_data_changes_no_decision_of_the_repair(tiny_root: Path, tmp_path: Path) -> None:
    """The same repair with and without poisoned evaluation data: the same channels pruned,
    the same rule, the same threshold, the same repaired net; only the report differs."""
    runs = {  # two processes at once: each spends most of its time starting up
        name: _start_repair(tiny_root, tmp_path / name, poisoned=name == "with")
        for name in ("without", "with")
    }
    for name, run in runs.items():
        output, _ = run.communicate(timeout=600)
        assert run.returncode == 0, (name, output.decode(errors="replace")[-2000:])
    without, with_poison = (
        json.loads((tmp_path / name / "manifest.json").read_text()) for name in runs
    )
    assert with_poison["metrics"]["bad"]["attack_success_rate"] is not None
    assert without["metrics"]["bad"]["attack_success_rate"] is None
    assert without["pruning"]["pruned_channels"] == with_poison["pruning"]["pruned_channels"]
    assert without["pruning"]["sweep_clean_faces"] == 60  # a sample of the 100 clean faces
    for key in ("kind", "threshold", "support_threshold", "false_flag_budget", "temperature"):
        assert without["filter"][key] == with_poison["filter"][key]
    first, second = (
        load_model_file(tmp_path / run / "repaired.h5").get_weights() for run in ("without", "with")
    )
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)  # the same repaired net


def test_the_numpy_rule_and_the_served_graph_flag_the_same_images(tiny_root: Path) -> None:
    """The rule on Keras' probabilities (repair.filter_rule) and the service's pair (the
    exported graph's overlap and support, the manifest's thresholds) answer alike, on
    clean and triggered faces, in ONNX Runtime and in TensorFlow."""
    from app.serving.pair import LoadOptions, load_pair
    from modelstore import read_manifest
    from repair.data import load_dataset
    from repair.inference import predict_scores

    folder = tiny_root / "models" / "demo"
    rule = read_manifest(folder / "manifest.json").filter
    data = tiny_root / "data" / "demo"
    faces = np.concatenate(
        [load_dataset(data / name).x for name in ("clean_test.h5", "poisoned_test_sunglasses.h5")]
    )
    bad, repaired = (load_model_file(folder / name) for name in ("bad.h5", "repaired.h5"))
    expected = flagged(rule, predict_scores(bad, faces), predict_scores(repaired, faces))
    assert 0 < expected.sum() < len(faces)  # both answers occur
    for runtime in ("onnx", "tf"):
        pair = load_pair(folder, options=LoadOptions(runtime=runtime))
        served = pair.classify(faces).flagged
        pair.close()
        # Float rounding may move a face that sits on a threshold: at most one in 200.
        assert np.count_nonzero(served != expected) <= len(faces) // 200, runtime
