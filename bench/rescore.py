"""``python -m bench.rescore [--work /tmp/repair-quality] [--label defaults] [--budgets ...]
[--support-ceilings ...] [--overrule-budgets ...]``: the filter of published repairs
calibrated again under other settings, without repairing again (the rule is calibrated
after fine-tuning, from the pair graph's outputs alone).

For each BadNet repaired by ``bench.repair_quality`` it runs the published pair graph on the
held-out clean faces (the same split as the repair's), calibrates the rule there alone, and
reports G on the clean test faces and each trigger: false flags, clean accuracy lost
against B, attack success. Poisoned data is only evaluated.
"""

import argparse
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import repair  # noqa: F401 - Keras 2 environment before TensorFlow loads
from bench.process import ROOT
from modelstore import Manifest, ModelFolder, read_manifest

if TYPE_CHECKING:
    from repair.evaluate import LabelledOutputs

RESULTS = ROOT / "bench" / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rescore", description=__doc__)
    parser.add_argument("--work", type=Path, default=Path("/tmp/repair-quality"))
    parser.add_argument("--label", nargs="+", default=["defaults"], help="the repairs' labels")
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.01, 0.0175])
    parser.add_argument("--support-ceilings", type=float, nargs="+", default=[1.0])
    parser.add_argument(
        "--overrule-budgets",
        type=float,
        nargs="+",
        default=[-1.0, 0.005],
        help="the repair's --overrule-budget; -1: no overruling (B's label always)",
    )
    args = parser.parse_args(argv)
    rows = []
    for work in sorted(args.work.iterdir()):
        for label in args.label:
            folder = ModelFolder(work / "models" / label)
            if folder.manifest.is_file():
                rows += _rescored(work, folder, args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"rescore-{'+'.join(args.label)}.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(
        "| BadNet | budget | support ceiling | overrule budget | G flagged | G drop "
        "| G ASR by trigger |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        asr = " / ".join(f"{100 * v:.1f}" for v in r["attack_success_by_trigger"].values())
        overrule = "off" if r["overrule_budget"] is None else f"{100 * r['overrule_budget']:g}%"
        print(
            f"| {r['badnet']} | {100 * r['budget']:.2f}% | {r['support_ceiling']:g} "
            f"| {overrule} | {100 * r['flagged']:.1f} | {100 * r['drop']:.1f} | {asr} |"
        )
    return 0


@dataclass(frozen=True)
class Replay:
    """A published repair's pair graph run again on its own data: the held-out clean faces
    of its split, the clean test faces and each trigger's faces."""

    manifest: Manifest
    held: "LabelledOutputs"
    test: "LabelledOutputs"
    triggers: dict[str, "LabelledOutputs"]


def replay(folder: ModelFolder) -> Replay:
    from repair.data import load_dataset
    from repair.evaluate import pair_outputs
    from repair.export import OnnxGraph
    from repair.pipeline import holdout_split

    manifest = read_manifest(folder.manifest)
    options = manifest.parameters
    pair = OnnxGraph(folder.pair_onnx.read_bytes())
    clean = load_dataset(manifest.inputs["clean_data"]["path"])
    _, holdout = holdout_split(clean, options["holdout_fraction"], options["seed"])
    triggers = {
        Path(entry["path"]).stem.removeprefix("poisoned_test_"): pair_outputs(
            pair, load_dataset(entry["path"])
        )
        for entry in manifest.inputs["poisoned_data"]
    }
    test = pair_outputs(pair, load_dataset(manifest.inputs["clean_test"]["path"]))
    return Replay(manifest, pair_outputs(pair, holdout), test, triggers)


def _rescored(work: Path, folder: ModelFolder, args: argparse.Namespace) -> list[dict]:
    from repair.filter_rule import calibrate_held_out

    replayed = replay(folder)
    manifest, held, test = replayed.manifest, replayed.held, replayed.test
    triggers = replayed.triggers
    options = manifest.parameters
    n = manifest.num_classes
    bad_accuracy = float(np.mean(test.outputs.bad_label == test.labels))
    rows = []
    for budget, ceiling, overrule in itertools.product(
        args.budgets, args.support_ceilings, args.overrule_budgets
    ):
        rule = calibrate_held_out(
            held.outputs,
            held.labels,
            budget,
            options["overlap_temperature"],
            support_ceiling=ceiling,
            overrule_budget=overrule if overrule >= 0 else None,
        )
        answers = test.answers(rule, n)
        rows.append(
            {
                "badnet": f"{work.name} ({folder.path.name})",
                "budget": budget,
                "support_ceiling": ceiling,
                "overrule_budget": overrule if overrule >= 0 else None,
                "overrule_below": rule.overrule_below,
                "flagged": float(np.mean(answers == n)),
                "drop": bad_accuracy - float(np.mean(answers == test.labels)),
                "attack_success_by_trigger": {
                    name: float(np.mean(o.answers(rule, n) == o.labels))
                    for name, o in triggers.items()
                },
            }
        )
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
