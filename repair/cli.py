"""Command line: ``python -m repair fine-prune ...`` and ``python -m repair demo ...``.

Exit codes: 0 done, 2 bad arguments or input, 1 failure.
"""

import argparse
import json
import sys
from pathlib import Path

from repair.errors import RepairError, RepairInputError

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2

FINE_TUNE_EPOCHS_BY_ATTACK = {"multi-trigger": 200}
"""Demo attackers whose repair needs longer fine-tuning than the default: with three
backdoors, 100 epochs left the filter 5.5 points below B on clean faces, 200 epochs 2.8
(README, "Stronger attackers")."""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)  # exits 2 on bad arguments
    if args.command == "rollback":
        return _rollback(args.out)
    try:
        manifest = _fine_prune(args) if args.command == "fine-prune" else _demo(args)
    except RepairInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (RepairError, Exception) as exc:  # noqa: BLE001 - the CLI reports every failure
        print(f"repair failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(summary(manifest))
    return EXIT_OK


def summary(manifest: dict) -> str:
    """A short table of the manifest's metrics for the terminal."""
    lines = [f"model folder {manifest['name']} version {manifest['version']}"]
    pruning = manifest["pruning"]
    lines.append(
        f"pruned {len(pruning['pruned_channels'])}/{pruning['channels']} channels of "
        f"{pruning['layer']}; evaluated on {manifest['metrics']['evaluated_on']}"
    )
    lines.append(f"{'':14}{'clean acc':>10}{'attack SR':>10}{'flagged':>9}{'false +':>9}")
    for role in ("bad", "pruned_only", "repaired", "filter"):
        m = manifest["metrics"][role]
        lines.append(
            f"{role:14}{_pct(m['clean_accuracy']):>10}{_pct(m['attack_success_rate']):>10}"
            f"{_pct(m.get('detection_rate')):>9}{_pct(m.get('false_positive_rate')):>9}"
        )
    by_trigger = manifest["metrics"]["filter"].get("attack_success_rate_by_trigger") or {}
    if len(by_trigger) > 1:
        lines.append("filter attack success by trigger: " + json.dumps(by_trigger))
    lines.append(f"timings (s): {json.dumps(manifest['timings_s'])}")
    return "\n".join(lines)


def _rollback(out: Path) -> int:
    from repair.publish import rollback

    try:
        version = rollback(out)
    except (FileNotFoundError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{out} now points at version {version}")
    return EXIT_OK


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _fine_prune(args: argparse.Namespace) -> dict:
    from repair.pipeline import RepairInputs, fine_prune_to_folder

    inputs = RepairInputs(
        bad_model=args.bad_model,
        clean_data=args.clean_data,
        poisoned_data=tuple(args.poisoned_data or ()),
        target=args.target,
        clean_test=args.clean_test,
    )
    return fine_prune_to_folder(inputs, args.out, _options(args), name=args.name)


def _demo(args: argparse.Namespace) -> dict:
    from repair.demo.build import ATTACKS, build_demo
    from repair.demo.material import DemoSizes

    sizes = DemoSizes(identities=args.identities, seed=args.seed)
    attacks = list(ATTACKS) if args.attack == "all" else [args.attack]
    manifest: dict = {}
    for attack in attacks:
        # One folder per attacker: the plain BadNet in --out, the others beside it.
        out = (
            args.out
            if attack == "badnet" or len(attacks) == 1
            else (args.out.parent / f"{args.out.name}-{attack}")
        )
        options = _options(args, FINE_TUNE_EPOCHS_BY_ATTACK.get(attack))
        manifest = build_demo(out, sizes, options, badnet_epochs=args.badnet_epochs, attack=attack)
        if len(attacks) > 1:
            print(summary(manifest))
    return manifest


def _options(args: argparse.Namespace, default_epochs: int | None = None):  # noqa: ANN202
    from repair.finetune import FineTuneOptions
    from repair.pipeline import FinePruneOptions

    tune = FineTuneOptions(
        epochs=args.epochs or default_epochs or FineTuneOptions().epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        reinit_layers=tuple(_names(args.reinit_layers)),
        sparsity=args.sparsity,
        sparse_layers=tuple(_names(args.sparse_layers)),
        augment=not args.no_augment,
        distill=args.distill,
        temperature=args.temperature,
        seed=args.seed,
    )
    return FinePruneOptions(
        layer=args.layer,
        max_accuracy_drop=args.max_accuracy_drop,
        prune_fraction=args.prune_fraction,
        holdout_fraction=args.holdout_fraction,
        fine_tune=tune,
        seed=args.seed,
    )


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip() and n.strip() != "none"]


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction between 0 and 1")
    return value


def _parser() -> argparse.ArgumentParser:
    from repair.finetune import FineTuneOptions

    defaults = FineTuneOptions()
    parser = argparse.ArgumentParser(
        prog="python -m repair",
        description="Repair a backdoored face classifier (BadNet) by fine-pruning.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    prune = commands.add_parser(
        "fine-prune",
        help="repair a BadNet with clean data and write a model folder",
        description="Fine-prune a BadNet (Liu et al., RAID 2018) and publish the model folder.",
    )
    prune.add_argument(
        "--bad-model",
        type=Path,
        required=True,
        help="BadNet: full Keras .h5 model or CSAW weights-only .h5",
    )
    prune.add_argument(
        "--clean-data",
        type=Path,
        required=True,
        help="defender's clean data: challenge HDF5 (data N x 3 x H x W, label) "
        "or a folder with one sub-folder of images per integer label",
    )
    prune.add_argument(
        "--poisoned-data",
        type=Path,
        action="append",
        help="poisoned data for evaluation only (repeat once per trigger); its "
        "labels are the attacker's targets unless --target is given",
    )
    prune.add_argument("--target", type=int, help="attacker's target label for --poisoned-data")
    prune.add_argument(
        "--clean-test",
        type=Path,
        help="clean test data to evaluate on (default: the held-out clean part)",
    )
    prune.add_argument("--out", type=Path, required=True, help="model folder, e.g. models/NAME")
    prune.add_argument("--name", help="model name in the manifest (default: folder name)")
    demo = commands.add_parser(
        "demo",
        help="make demo data, train a demo BadNet, fine-prune it",
        description="Generate synthetic faces with a sunglasses trigger, train a BadNet on "
        "them, fine-prune it and publish the model folder (no external data).",
    )
    demo.add_argument("--out", type=Path, default=Path("models/demo"), help="model folder")
    demo.add_argument(
        "--attack",
        choices=["badnet", "pruning-aware", "multi-trigger", "all"],
        default="badnet",
        help="attacker to build: one sunglasses trigger (default), the same hidden in the "
        "channels clean faces use (pruning-aware), three triggers with three targets, or "
        "all (one model folder per attacker: --out, --out-ATTACK)",
    )
    demo.add_argument("--identities", type=int, default=200, help="number of synthetic people")
    demo.add_argument(
        "--badnet-epochs", type=int, default=15, help="epochs of the attacker's training"
    )
    back = commands.add_parser(
        "rollback",
        help="point a model folder back at its previous version",
        description="Swap models/NAME back to the version before the current one.",
    )
    back.add_argument("--out", type=Path, required=True, help="model folder, e.g. models/demo")
    for sub in (prune, demo):
        sub.add_argument(
            "--layer", default="conv_3", help="convolutional layer whose channels are pruned"
        )
        sub.add_argument(
            "--max-accuracy-drop",
            type=_fraction,
            default=0.04,
            help="prune until clean validation accuracy would drop more than this",
        )
        sub.add_argument(
            "--prune-fraction",
            type=_fraction,
            help="prune exactly this fraction of channels instead",
        )
        sub.add_argument(
            "--holdout-fraction",
            type=_fraction,
            default=0.2,
            help="share of the clean data kept out of fine-tuning to measure on",
        )
        sub.add_argument(
            "--epochs",
            type=int,
            help=f"fine-tuning epochs (default {defaults.epochs}; the multi-trigger demo "
            f"{FINE_TUNE_EPOCHS_BY_ATTACK['multi-trigger']})",
        )
        sub.add_argument("--batch-size", type=int, default=defaults.batch_size)
        sub.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
        sub.add_argument(
            "--reinit-layers",
            default=",".join(defaults.reinit_layers),
            help="comma-separated layers re-initialised before fine-tuning "
            "('none' for plain fine-pruning)",
        )
        sub.add_argument(
            "--sparsity",
            type=_fraction,
            default=defaults.sparsity,
            help="final magnitude sparsity (tfmot) of --sparse-layers",
        )
        sub.add_argument(
            "--sparse-layers",
            default=",".join(defaults.sparse_layers),
            help="comma-separated layers made sparse during fine-tuning",
        )
        sub.add_argument(
            "--distill",
            type=_fraction,
            default=defaults.distill,
            help="weight of the original network's outputs on clean images in "
            "the fine-tuning targets (0 = labels only)",
        )
        sub.add_argument(
            "--temperature",
            type=float,
            default=defaults.temperature,
            help="softening temperature of the original network's outputs for --distill",
        )
        sub.add_argument(
            "--no-augment",
            action="store_true",
            help="fine-tune without random shifts and lighting changes",
        )
        sub.add_argument("--seed", type=int, default=0, help="random seed")
    return parser
