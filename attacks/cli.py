"""``python -m attacks``: build demo BadNets and repair them into model folders.

Exit codes as ``python -m repair``: 0 done, 2 bad arguments or input, 1 failure.
"""

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from modelstore import Manifest
from repair.cli import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, add_option_arguments, summary
from repair.cli import options_from_args as repair_options
from repair.errors import RepairError, RepairInputError
from repair.options import RepairOptions
from repair.progress import StageReporter

ATTACK_NAMES = (
    "badnet",
    "pruning-aware",
    "multi-trigger",
    "low-rate",
    "blended",
    "wanet",
    "adaptive-blend",
    "filter-aware",
)
"""The keys of :data:`attacks.build.ATTACKS`, named here so that ``--help`` does not load
TensorFlow."""
ARCH_NAMES = ("deepid", "resnet", "mobilenet")
"""The keys of :data:`attacks.zoo.ARCHITECTURES`, for the same reason."""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = parser().parse_args(argv)  # exits 2 on bad arguments
    try:
        for manifest in build(args, repair_options(args)):
            print(summary(manifest), flush=True)
    except RepairInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (RepairError, Exception) as exc:  # the CLI reports every failure
        print(f"demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def build(args: argparse.Namespace, options: RepairOptions) -> Iterator[Manifest]:
    """Build and repair each requested attacker; yield each manifest when it is done."""
    from attacks.build import build_demo
    from attacks.material import DemoSizes

    sizes = DemoSizes(identities=args.identities, seed=options.seed)
    names = list(ATTACK_NAMES) if args.attack == "all" else [args.attack]
    if args.arch != "deepid" and "pruning-aware" in names:
        if args.attack != "all":
            raise RepairInputError("--attack pruning-aware is built for --arch deepid only")
        names.remove("pruning-aware")
    base = args.out or Path("models") / ("demo" if args.arch == "deepid" else f"demo-{args.arch}")
    for attack in names:
        # One folder per attacker: the plain BadNet in --out, the others beside it.
        out = (
            base if attack == "badnet" or len(names) == 1 else base.parent / f"{base.name}-{attack}"
        )
        started = time.perf_counter()
        # Two reporters: the repair's estimate of the time left counts from its own start.
        attacker, repair = StageReporter(f"demo {attack}"), StageReporter(f"repair {attack}")
        manifest = build_demo(
            out,
            sizes,
            options,
            badnet_epochs=args.badnet_epochs,
            attack=attack,
            arch=args.arch,
            on_progress=attacker.stage,
            on_repair_progress=repair.stage,
        )
        manifest.demo["timings_s"]["total"] = round(time.perf_counter() - started, 3)
        yield manifest


def parser() -> argparse.ArgumentParser:
    command = argparse.ArgumentParser(
        prog="python -m attacks",
        description="Generate synthetic faces, poison them, train a BadNet on them, "
        "fine-prune it and publish the model folder (no external data).",
    )
    command.add_argument(
        "--out",
        type=Path,
        default=None,
        help="model folder (default: models/demo, or models/demo-ARCH for another --arch)",
    )
    command.add_argument(
        "--arch",
        choices=ARCH_NAMES,
        default="deepid",
        help="the BadNet's architecture: the CSAW DeepID net at 55x47 (default), a residual "
        "net with BatchNorm or a depthwise-separable (MobileNet-style) net, both at 64x64 "
        "(the demo faces resized)",
    )
    command.add_argument(
        "--attack",
        choices=[*ATTACK_NAMES, "all"],
        default="badnet",
        help="attacker to build: sunglasses (badnet, the default), the same hidden in the "
        "channels clean faces use (pruning-aware), three triggers with three targets "
        "(multi-trigger), a small patch on 1.5%% of the training set (low-rate), a faint "
        "noise image over the whole picture (blended), a smooth warp of the whole face "
        "(wanet), half of a faint pattern on few faces with covers (adaptive-blend), sunglasses "
        "trained to survive this repair (filter-aware), or all "
        "(one model folder per attacker: --out, --out-ATTACK)",
    )
    command.add_argument("--identities", type=int, default=200, help="number of synthetic people")
    command.add_argument(
        "--badnet-epochs",
        type=int,
        default=None,
        help="epochs of the attacker's training (default: the attacker's own, 15 for most)",
    )
    add_option_arguments(command)
    return command
