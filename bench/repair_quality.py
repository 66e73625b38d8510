"""``python -m bench.repair_quality [--seeds 0 1] [--attacks ...] [--archs deepid ...]
[--label NAME --REPAIR-OPTION ...]``: the repair's cost to honest users and its effect on
attackers, with the default options or a variant (any option of ``python -m repair``).

For each attacker and seed it trains a demo BadNet (``attacks``), repairs it with
``repair.fine_prune_to_folder`` and its defaults, and tabulates B / pruning only / B' / G:
clean accuracy, attack success per trigger, detection, false flags and repair wall time.
BadNets are kept under ``--work`` and reused. Writes
``bench/results/repair_quality-LABEL.json`` and prints a Markdown table (docs/method.md
holds the last ones).
"""

import argparse
import json
import time
from pathlib import Path

import repair  # noqa: F401 - Keras 2 environment before TensorFlow loads
from bench.process import ROOT
from modelstore import Manifest

RESULTS = ROOT / "bench" / "results"


def main(argv: list[str] | None = None) -> int:
    from repair.cli import options_from_args
    from repair.pipeline import fine_prune_to_folder

    args = _parser().parse_args(argv)
    options = options_from_args(args)
    rows = []
    for arch in args.archs:
        for attack in args.attacks:
            for seed in args.seeds:
                inputs, work = _badnet(args, arch, attack, seed)
                started = time.perf_counter()
                manifest = fine_prune_to_folder(inputs, work / "models" / args.label, options)
                rows.append(_row(arch, attack, seed, manifest, time.perf_counter() - started))
                print(_markdown([rows[-1]], header=len(rows) == 1), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"repair_quality-{args.label}.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("\n" + _markdown(rows))
    return 0


def _parser() -> argparse.ArgumentParser:
    from attacks.build import ATTACKS
    from attacks.zoo import ARCHITECTURES
    from repair.cli import add_option_arguments

    parser = argparse.ArgumentParser(prog="python -m bench.repair_quality", description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--attacks", nargs="+", default=list(ATTACKS), choices=list(ATTACKS))
    parser.add_argument(
        "--archs", nargs="+", default=["deepid"], choices=list(ARCHITECTURES), help="BadNets' nets"
    )
    parser.add_argument("--identities", type=int, default=200)
    parser.add_argument("--work", type=Path, default=Path("/tmp/repair-quality"))
    parser.add_argument(
        "--label", default="defaults", help="name of this run's repairs and results file"
    )
    add_option_arguments(parser)  # a variant of the repair: any of its options
    return parser


def _badnet(args: argparse.Namespace, arch: str, attack: str, seed: int) -> tuple:
    """The repair's inputs for one BadNet, trained on first use and kept under ``--work``."""
    from attacks.build import make_badnet
    from attacks.material import DemoSizes
    from repair.pipeline import RepairInputs

    prefix = "" if arch == "deepid" else f"{arch}-"
    work = args.work / f"{prefix}{attack}-s{seed}-i{args.identities}"
    info_path = work / "attack.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        return RepairInputs(**{k: _paths(v) for k, v in info["inputs"].items()}), work
    sizes = DemoSizes(identities=args.identities, seed=seed)
    attacked = make_badnet(work, sizes, attack, arch=arch)
    info = {"info": attacked.info}
    info["inputs"] = {k: _strings(v) for k, v in attacked.inputs.__dict__.items()}
    info_path.write_text(json.dumps(info))
    return attacked.inputs, work


def _paths(value: object) -> object:
    if isinstance(value, list):
        return tuple(Path(v) for v in value)
    return Path(value) if isinstance(value, str) else value


def _strings(value: object) -> object:
    if isinstance(value, tuple):
        return [str(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def _row(arch: str, attack: str, seed: int, manifest: Manifest, wall_s: float) -> dict:
    metrics = manifest.metrics

    def role(name: str) -> dict:
        m = getattr(metrics, name)
        return {
            "clean_accuracy": m.clean_accuracy,
            "attack_success_by_trigger": m.attack_success_rate_by_trigger,
            "detection_rate": m.detection_rate,
            "false_positive_rate": m.false_positive_rate,
        }

    return {
        "arch": arch,
        "attack": attack,
        "seed": seed,
        "bad": role("bad"),
        "pruned_only": role("pruned_only"),
        "repaired": role("repaired"),
        "filter": role("filter"),
        "filter_strict": role("filter_strict"),
        "threshold": manifest.filter.threshold,
        "support_threshold": manifest.filter.support_threshold,
        "repair_wall_s": round(wall_s, 1),
        "timings_s": manifest.timings_s,
    }


def _markdown(rows: list[dict], header: bool = True) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}"

    def asr(entry: dict) -> str:
        return " / ".join(pct(v) for v in entry["attack_success_by_trigger"].values())

    lines = []
    if header:
        lines += [
            "| net | attacker | seed | B clean / ASR | pruning only | B' | G clean / ASR "
            "| G drop | G flagged: poisoned / clean | strict rule: drop / clean flagged "
            "| repair s |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
    for r in rows:
        drop = r["bad"]["clean_accuracy"] - r["filter"]["clean_accuracy"]
        strict_drop = r["bad"]["clean_accuracy"] - r["filter_strict"]["clean_accuracy"]
        lines.append(
            f"| {r['arch']} | {r['attack']} | {r['seed']} "
            f"| {pct(r['bad']['clean_accuracy'])} / {asr(r['bad'])} "
            f"| {pct(r['pruned_only']['clean_accuracy'])} / {asr(r['pruned_only'])} "
            f"| {pct(r['repaired']['clean_accuracy'])} / {asr(r['repaired'])} "
            f"| {pct(r['filter']['clean_accuracy'])} / {asr(r['filter'])} "
            f"| {pct(drop)} | {pct(r['filter']['detection_rate'])} / "
            f"{pct(r['filter']['false_positive_rate'])} "
            f"| {pct(strict_drop)} / {pct(r['filter_strict']['false_positive_rate'])} "
            f"| {r['repair_wall_s']:.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
