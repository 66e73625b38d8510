"""Build the small versions of the demo's attackers one after another (each a real
backdoor, repaired with a short fine-tuning): ``python -m tests.support.attacker_builds
ROOT [NAME ...]`` publishes ``ROOT/<name>/models/m`` for each named small version (all by
default), going on past a failed one. A name is an attacker on DeepID, or ARCH-ATTACKER
on another architecture of :mod:`attacks.zoo`."""

import sys
import traceback
from pathlib import Path
from typing import NamedTuple

import repair  # noqa: F401 - Keras 2 environment before TensorFlow loads
from attacks.material import DemoSizes
from repair.options import RepairOptions


class SmallVersion(NamedTuple):
    """How one attacker's small version is made: its material, BadNet training and repair."""

    sizes: DemoSizes
    badnet_epochs: int | None
    """None: the attacker's own (``attacks.build.Attack.epochs``)."""
    repair_steps: int
    badnet_batch_size: int = 64
    badnet_learning_rate: float | None = None
    attack: str = ""
    """The attacker, when the name is not it."""
    arch: str = "deepid"


SMALL_VERSIONS = {
    "multi-trigger": SmallVersion(
        DemoSizes(identities=100, train_per_identity=24), 12, 100, badnet_learning_rate=2e-3
    ),
    "pruning-aware": SmallVersion(DemoSizes(identities=60, train_per_identity=24), 20, 100, 32),
    "low-rate": SmallVersion(DemoSizes(identities=100, train_per_identity=60), 7, 100),
    "blended": SmallVersion(DemoSizes(identities=40, train_per_identity=20), 15, 250),
    # These three plant their backdoor only as the demo does: its 6,000 faces, its epochs.
    "wanet": SmallVersion(DemoSizes(), None, 200),
    "adaptive-blend": SmallVersion(DemoSizes(), None, 200),
    "filter-aware": SmallVersion(DemoSizes(), None, 200),
    "resnet-badnet": SmallVersion(
        DemoSizes(identities=60, train_per_identity=24), 40, 600, attack="badnet", arch="resnet"
    ),
    "mobilenet-blended": SmallVersion(
        DemoSizes(identities=60, train_per_identity=24),
        40,
        600,
        attack="blended",
        arch="mobilenet",
    ),
}
"""Each attacker's smallest version whose backdoor works and which a short repair halves
(100 steps left the blended one at 51%), with TensorFlow's oneDNN kernels (figures from
builds of each version on this machine kind). The low-rate attacker poisons 1.5% of the
training set: it needs the demo's 6,000 training faces (90 poisoned: 97.7% attack success
after 7 epochs, 88.8% after 6; with 36 or 45 poisoned faces it reached 81%). The
pruning-aware one trains twice (clean, then the implant at half the epochs), in batches of
32, and levels off after 20 epochs (91.5%; 91.0% after 24, or with 30 faces per identity).
The multi-trigger one plants all three triggers in 12 epochs at twice the learning rate
(the weakest at 93.7%; after 11, one at 90.7%; after 14, 93.5%). The ResNet and MobileNet
ones train 40 epochs on 60 identities (ResNet: 100% attack success, 0.0% left in B' and
1.5% in G after 600 steps; MobileNet blended: 100%, 46% and 14%). The WaNet,
Adaptive-Blend and filter-aware attackers have no version smaller than the demo: on 60 or
100 identities the warp reached 14-74% attack success (at a 10% poisoning rate; on 200
identities at 15%, 92-98%), the adaptive blend 71%, and the filter-aware BadNet 87% (93% on
200)."""

ATTACKER_PROCESSES = (
    ("multi-trigger", "low-rate", "resnet-badnet", "wanet"),
    ("pruning-aware", "blended", "mobilenet-blended", "adaptive-blend", "filter-aware"),
)
"""The small versions as the suite builds them, in two processes of about equal CPU (each
ResNet or MobileNet version about as much as two DeepID ones). With one process, theirs
was the last build to end, long after the others (docs/testing.md)."""
assert sorted(sum(ATTACKER_PROCESSES, ())) == sorted(SMALL_VERSIONS)


def model_folder(root: Path, attack: str) -> Path:
    return root / attack / "models" / "m"


def main(root: Path, attacks: list[str]) -> int:
    from attacks.build import build_demo  # TensorFlow: not for the suite's conftest

    failed = []
    for name in attacks:
        version = SMALL_VERSIONS[name]
        try:
            build_demo(
                model_folder(root, name),
                version.sizes,
                RepairOptions(steps=version.repair_steps),
                badnet_epochs=version.badnet_epochs,
                attack=version.attack or name,
                arch=version.arch,
                badnet_batch_size=version.badnet_batch_size,
                badnet_learning_rate=version.badnet_learning_rate,
            )
        except Exception:  # report it, build the others
            traceback.print_exc()
            failed.append(name)
    print(f"attacker builds failed: {failed}" if failed else "attacker builds done", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2:] or list(SMALL_VERSIONS)))
