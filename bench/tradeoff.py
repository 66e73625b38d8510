"""``python -m bench.tradeoff --labels LABEL [...] --out PLOT.png``: G's trade-off curve per
attacker, from the repairs ``python -m bench.repair_quality --label LABEL`` published.

Each repair's manifest holds its operating points: the calibrated rule at each false-flag
budget, its threshold from the held-out clean faces alone, then the clean test faces it
flags and the triggered faces it lets through. One panel per attacker, one line per
BadNet; the marker is the repair's own budget (the default). With ``--current-rule`` the
points are calibrated again by today's rule code and defaults from each published pair
graph (``bench.rescore``), for repairs made before the rule changed. Nothing here feeds
back into a repair.
"""

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from modelstore import ModelFolder, read_manifest  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tradeoff", description=__doc__)
    parser.add_argument("--work", type=Path, default=Path("/tmp/repair-quality"))
    parser.add_argument("--labels", nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--current-rule",
        action="store_true",
        help="calibrate the points again with today's rule and defaults",
    )
    args = parser.parse_args(argv)
    curves = _curves(args.work, args.labels, args.current_rule)
    if not curves:
        print(f"no repairs labelled {args.labels} under {args.work}")
        return 1
    _plot(curves, args.out)
    print(f"{args.out}: {sum(len(c) for c in curves.values())} BadNets")
    return 0


def _curves(
    work: Path, labels: list[str], current_rule: bool = False
) -> dict[str, list[tuple[str, list, float]]]:
    """Per attacker: (BadNet, operating points, its own budget), one per repaired BadNet."""
    curves: dict[str, list] = {}
    for badnet in sorted(work.glob("*-s*-i*")):
        for label in labels:
            folder = ModelFolder(badnet / "models" / label)
            if not folder.manifest.exists():
                continue
            manifest = read_manifest(folder.manifest)
            attack = (manifest.demo or {}).get("attack") or badnet.name.rsplit("-s", 1)[0]
            points, budget = (
                _current_points(folder)
                if current_rule
                else (
                    manifest.filter.operating_points,
                    manifest.filter.calibrated_rule().false_flag_budget,
                )
            )
            points = [p for p in points if p["attack_success_rate"] is not None]
            curves.setdefault(attack, []).append((badnet.name, points, budget))
            break  # one repair per BadNet: the first label that has one
    return curves


def _current_points(folder: ModelFolder) -> tuple[list[dict], float]:
    """The operating points of today's rule and defaults on a published repair, and the
    default budget."""
    from bench.rescore import replay
    from repair.evaluate import operating_points
    from repair.options import RepairOptions

    defaults, replayed = RepairOptions(), replay(folder)
    points = operating_points(
        replayed.held,
        replayed.test,
        replayed.triggers,
        replayed.manifest.num_classes,
        defaults.overlap_temperature,
        defaults.support_check,
        support_ceiling=defaults.support_ceiling,
        overrule_budget=defaults.overruling,
    )
    return points, defaults.false_flag_budget


def _plot(curves: dict[str, list], out: Path) -> None:
    columns = min(4, len(curves))
    rows = math.ceil(len(curves) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.0 * rows), squeeze=False)
    for axis, (attack, badnets) in zip(axes.flat, sorted(curves.items()), strict=False):
        for name, points, budget in badnets:
            flagged = [100 * p["false_positive_rate"] for p in points]
            through = [100 * p["attack_success_rate"] for p in points]
            (line,) = axis.plot(flagged, through, marker=".", lw=1, label=name.split("-i")[0])
            chosen = [p for p in points if p["false_flag_budget"] == budget]
            for point in chosen:
                axis.plot(
                    100 * point["false_positive_rate"],
                    100 * point["attack_success_rate"],
                    marker="o", ms=8, mfc="none", color=line.get_color(),
                )  # fmt: skip
        axis.axvline(2, color="grey", lw=0.6, ls=":")
        axis.axhline(1, color="grey", lw=0.6, ls=":")
        axis.set_xscale("log")
        axis.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_title(attack, fontsize=10)
        axis.set_xlabel("clean faces flagged (%)", fontsize=8)
        axis.set_ylabel("triggered faces through G (%)", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.legend(fontsize=6)
    for axis in list(axes.flat)[len(curves) :]:
        axis.set_visible(False)
    figure.suptitle(
        "G's trade-off per attacker (circle: the default budget; dotted: targets)", fontsize=10
    )
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    raise SystemExit(main())
