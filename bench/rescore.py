"""``python -m bench.rescore [--work /tmp/repair-quality] [--label defaults] [--budgets ...]
[--support-ceilings ...]``: the filter of published repairs calibrated again under other
settings, without repairing again.

For each BadNet repaired by ``bench.repair_quality`` it runs the published pair graph on the
held-out clean faces (the same split as the repair's), calibrates the rule there alone, and
reports G on the clean test faces and each trigger: false flags, clean accuracy lost
against B, attack success. Poisoned data is only evaluated.
"""

import argparse
import json
from pathlib import Path

import numpy as np

import repair  # noqa: F401 - Keras 2 environment before TensorFlow loads
from bench.process import ROOT
from modelstore import ModelFolder, read_manifest

RESULTS = ROOT / "bench" / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rescore", description=__doc__)
    parser.add_argument("--work", type=Path, default=Path("/tmp/repair-quality"))
    parser.add_argument("--label", default="defaults", help="the repairs' label")
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.01, 0.0175])
    parser.add_argument("--support-ceilings", type=float, nargs="+", default=[0.001, 1.0])
    args = parser.parse_args(argv)
    rows = []
    for work in sorted(args.work.iterdir()):
        folder = ModelFolder(work / "models" / args.label)
        if folder.manifest.is_file():
            rows += _rescored(work, folder, args.budgets, args.support_ceilings)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"rescore-{args.label}.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("| BadNet | budget | support ceiling | G flagged | G drop | G ASR by trigger |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        asr = " / ".join(f"{100 * v:.1f}" for v in r["attack_success_by_trigger"].values())
        print(
            f"| {r['badnet']} | {100 * r['budget']:.2f}% | {r['support_ceiling']:g} "
            f"| {100 * r['flagged']:.1f} | {100 * r['drop']:.1f} | {asr} |"
        )
    return 0


def _rescored(
    work: Path, folder: ModelFolder, budgets: list[float], ceilings: list[float]
) -> list[dict]:
    from repair.data import load_dataset
    from repair.evaluate import pair_outputs
    from repair.export import OnnxGraph
    from repair.filter_rule import calibrate_on
    from repair.pipeline import holdout_split

    manifest = read_manifest(folder.manifest)
    options = manifest.parameters
    pair = OnnxGraph(folder.pair_onnx.read_bytes())
    clean = load_dataset(manifest.inputs["clean_data"]["path"])
    _, holdout = holdout_split(clean, options["holdout_fraction"], options["seed"])
    held = pair_outputs(pair, holdout)
    test = pair_outputs(pair, load_dataset(manifest.inputs["clean_test"]["path"]))
    triggers = {
        Path(entry["path"]).stem.removeprefix("poisoned_test_"): pair_outputs(
            pair, load_dataset(entry["path"])
        )
        for entry in manifest.inputs["poisoned_data"]
    }
    n = manifest.num_classes
    bad_accuracy = float(np.mean(test.outputs.bad_label == test.labels))
    rows = []
    for budget in budgets:
        for ceiling in ceilings:
            rule = calibrate_on(
                held.outputs.overlap,
                held.outputs.support,
                budget,
                options["overlap_temperature"],
                ceiling,
            )
            answers = test.answers(rule, n)
            rows.append(
                {
                    "badnet": work.name,
                    "budget": budget,
                    "support_ceiling": ceiling,
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
