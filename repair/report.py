"""The pruning figure and library versions for the manifest."""

from importlib import metadata
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from repair.channels import SweepPoint  # noqa: E402


def plot_pruning(
    sweep: list[SweepPoint], depth: int, metrics: dict, layer: str, path: Path
) -> None:
    """Clean accuracy and attack success against the fraction pruned (Liu et al., Fig. 3)."""
    fractions = [p.fraction for p in sweep]
    figure, axis = plt.subplots(figsize=(7, 4.5), dpi=110)
    axis.plot(fractions, [p.clean_accuracy for p in sweep], label="clean accuracy (pruning only)")
    if sweep and sweep[0].attack_success_rate is not None:
        asr = [p.attack_success_rate for p in sweep]
        axis.plot(fractions, asr, color="tab:red", label="attack success (pruning only)")
    chosen = depth / max(len(sweep) - 1, 1)
    axis.axvline(chosen, color="grey", linestyle="--", label=f"chosen: {depth} channels pruned")
    repaired = metrics.get("repaired", {})
    axis.scatter(
        [chosen],
        [repaired.get("clean_accuracy")],
        color="tab:blue",
        marker="*",
        s=150,
        zorder=3,
        label="clean accuracy after fine-tuning",
    )
    if repaired.get("attack_success_rate") is not None:
        axis.scatter(
            [chosen],
            [repaired["attack_success_rate"]],
            color="tab:red",
            marker="*",
            s=150,
            zorder=3,
            label="attack success after fine-tuning",
        )
    axis.set_xlabel(f"fraction of {layer} channels pruned (lowest mean activation first)")
    axis.set_ylabel("rate")
    axis.set_ylim(-0.02, 1.02)
    axis.set_title("Fine-pruning: pruning sweep and repaired network")
    axis.grid(alpha=0.3)
    axis.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_filter(points: list[dict], metrics: dict, path: Path) -> None:
    """The calibrated rule's trade-off: false flags against detection at each budget, the
    strict rule beside it, and the default operating point."""
    figure, axis = plt.subplots(figsize=(7, 4.5), dpi=110)
    flags = [100 * p["false_positive_rate"] for p in points]
    detected = [p["detection_rate"] for p in points]
    if all(d is not None for d in detected):
        axis.plot(flags, [100 * d for d in detected], marker="o", label="calibrated rule")
        for point, x, y in zip(points, flags, detected, strict=True):
            axis.annotate(
                f"{100 * point['false_flag_budget']:g}%",
                (x, 100 * y),
                fontsize=7,
                textcoords="offset points",
                xytext=(4, -10),
            )
        axis.set_ylabel("poisoned images flagged (%)")
        strict = metrics.get("filter_strict", {})
        if strict.get("detection_rate") is not None:
            axis.scatter(
                [100 * strict["false_positive_rate"]],
                [100 * strict["detection_rate"]],
                color="tab:red",
                marker="s",
                label="strict rule (top labels differ)",
            )
        chosen = metrics["filter"]
        axis.scatter(
            [100 * chosen["false_positive_rate"]],
            [100 * chosen["detection_rate"]],
            color="black",
            marker="*",
            s=150,
            zorder=3,
            label=f"served ({chosen['rule']})",
        )
    else:  # no poisoned data: held-out against evaluation false flags
        held = [100 * p["held_out_false_positive_rate"] for p in points]
        axis.plot(held, flags, marker="o", label="calibrated rule")
        axis.set_ylabel("clean faces flagged, evaluation data (%)")
    axis.set_xlabel("clean faces flagged (%)")
    axis.set_title("Filter G: false flags against detection, by false-flag budget", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shaped the result."""
    names = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "numpy", "h5py")
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
