"""Command line: ``python -m repair fine-prune ...`` and ``python -m repair rollback ...``
(``python -m repair demo ...`` runs ``python -m attacks ...``, the demo builder).

Exit codes: 0 done, 2 bad arguments or input, 1 failure. The repair options are generated
from :class:`repair.options.RepairOptions`, so a default changes in one place.
"""

import argparse
import getpass
import json
import shlex
import sys
import types
import typing
from pathlib import Path

from pydantic import ValidationError

from modelstore import Manifest
from repair.errors import RepairError, RepairInputError
from repair.options import RepairOptions
from repair.progress import StageReporter

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)  # exits 2 on bad arguments
    args.command_line = list(sys.argv[1:] if argv is None else argv)
    if args.command == "rollback":
        return _rollback(args.out)
    try:
        options = options_from_args(args)
        print(summary(_fine_prune(args, options)))
    except RepairInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (RepairError, Exception) as exc:  # the CLI reports every failure
        print(f"repair failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def summary(manifest: Manifest) -> str:
    """A short table of the manifest's metrics for the terminal."""
    metrics, rule, pruning = manifest.metrics, manifest.filter, manifest.pruning
    lines = [f"model folder {manifest.name} version {manifest.version}"]
    lines.append(
        f"pruned {len(pruning['pruned_channels'])}/{pruning['channels']} channels of "
        f"{pruning['layer']}; {manifest.fine_tuning['epochs']} epochs of fine-tuning; "
        f"evaluated on {metrics.evaluated_on}"
    )
    threshold = "" if rule.threshold is None else f", overlap threshold {rule.threshold:.3g}"
    if rule.support_threshold is not None:
        threshold += f", support threshold {rule.support_threshold:.3g}"
    lines.append(f"filter rule: {rule.kind}{threshold}")
    lines.append(f"{'':14}{'clean acc':>10}{'attack SR':>10}{'flagged':>9}{'false +':>9}")
    for role in ("bad", "pruned_only", "repaired", "filter", "filter_strict"):
        m = getattr(metrics, role)
        lines.append(
            f"{role:14}{_pct(m.clean_accuracy):>10}{_pct(m.attack_success_rate):>10}"
            f"{_pct(m.detection_rate):>9}{_pct(m.false_positive_rate):>9}"
        )
    by_trigger = metrics.filter.attack_success_rate_by_trigger or {}
    if len(by_trigger) > 1:
        lines.append("filter attack success by trigger: " + json.dumps(by_trigger))
    lines.append(
        f"timings (s): {json.dumps(manifest.timings_s)}; "
        f"peak memory {manifest.peak_memory_mib or 0:.0f} MiB"
    )
    return "\n".join(lines)


def options_from_args(args: argparse.Namespace) -> RepairOptions:
    """The options given on the command line, the rest at their defaults."""
    given = {
        name: getattr(args, name)
        for name in RepairOptions.model_fields
        if getattr(args, name, None) is not None
    }
    try:
        return RepairOptions(**given)
    except ValidationError as exc:
        problems = "; ".join(
            (f"--{'.'.join(str(p) for p in e['loc']).replace('_', '-')}: " if e["loc"] else "")
            + e["msg"]
            for e in exc.errors()
        )
        raise RepairInputError(problems) from exc


def add_option_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per field of :class:`RepairOptions`, with its description and default."""
    group = parser.add_argument_group("repair options")
    for name, field in RepairOptions.model_fields.items():
        flag = "--" + name.replace("_", "-")
        help_text = f"{field.description} (default: {_shown(field.default)})".replace("%", "%%")
        kind = _plain_type(field.annotation)
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text)
        elif typing.get_origin(kind) is tuple:
            group.add_argument(flag, type=_names, metavar="A,B", help=help_text)
        elif typing.get_origin(kind) is typing.Literal:
            group.add_argument(flag, choices=typing.get_args(kind), help=help_text)
        else:
            group.add_argument(flag, type=kind, help=help_text)


def _plain_type(annotation: object) -> object:
    """``X`` for ``X | None``."""
    if isinstance(annotation, types.UnionType):
        return next(a for a in typing.get_args(annotation) if a is not type(None))
    return annotation


def _shown(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(value) or "none"
    return "none" if value is None else str(value)


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip() and n.strip() != "none")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _rollback(out: Path) -> int:
    from modelstore import rollback

    try:
        version = rollback(out)
    except (FileNotFoundError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{out} now points at version {version}")
    return EXIT_OK


def _fine_prune(args: argparse.Namespace, options: RepairOptions) -> Manifest:
    from repair.pipeline import RepairInputs, fine_prune_to_folder

    inputs = RepairInputs(
        bad_model=args.bad_model,
        clean_data=args.clean_data,
        poisoned_data=tuple(args.poisoned_data or ()),
        target=args.target,
        clean_test=args.clean_test,
    )
    reporter = StageReporter(f"repair {args.out.name}")
    command = "python -m repair " + shlex.join(args.command_line)
    return fine_prune_to_folder(
        inputs,
        args.out,
        options,
        name=args.name,
        on_progress=reporter.stage,
        extra_manifest={"published_by": f"{command} (user {getpass.getuser()})"},
    )


def _parser() -> argparse.ArgumentParser:
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
    back = commands.add_parser(
        "rollback",
        help="point a model folder back at its previous version",
        description="Swap models/NAME back to the version before the current one.",
    )
    back.add_argument("--out", type=Path, required=True, help="model folder, e.g. models/demo")
    add_option_arguments(prune)
    return parser
