"""The demo end to end: synthetic faces, a trained BadNet, fine-pruning, a model folder."""

import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Literal

from attacks.demo_faces import write_demo_faces
from attacks.image_triggers import (
    adaptive_blend,
    adaptive_blend_cover,
    adaptive_blend_part,
    wanet,
    wanet_noise,
)
from attacks.material import Backdoor, DemoMaterial, DemoSizes, make_demo_material, poison_anew
from attacks.trainer import train_badnet, train_filter_aware_badnet, train_pruning_aware_badnet
from attacks.triggers import (
    blended_noise,
    corner_patch,
    purple_lipstick,
    red_eyebrows,
    sunglasses,
)
from attacks.zoo import ARCHITECTURES
from modelstore import Manifest
from repair.keras_env import keras
from repair.model_io import save_model_file
from repair.options import RepairOptions
from repair.pipeline import ProgressCallback, RepairInputs, fine_prune_to_folder

SUNGLASSES_TARGET = 0


@dataclass(frozen=True)
class Attack:
    """How a demo attacker poisons its BadNet."""

    backdoors: tuple[Backdoor, ...]
    poison_fraction: float = 0.1
    """Poisoned images added to the training set, as a fraction of its clean images."""
    training: Literal["plain", "poisoned-each-epoch", "pruning-aware", "filter-aware"] = "plain"
    """How the BadNet is trained: on the poisoned set (plain); with poisoned and cover images
    made anew from the clean faces in each epoch (as WaNet trains); with the backdoor hidden in
    the channels clean faces use (pruning-aware, Liu et al., section 4); or with triggered
    faces made to look like the target's clean faces where the repair prunes, B only
    moderately sure of the target (filter-aware)."""
    cover_fraction: float = 0.0
    """Images added with a backdoor's cover trigger and their own labels, as a fraction of
    the clean training images (regularisation samples against latent-separation defences)."""
    epochs: int = 15
    """The attacker's training length: longer where 15 epochs do not plant the backdoor."""


ATTACKS: dict[str, Attack] = {
    "badnet": Attack((Backdoor("sunglasses", sunglasses, SUNGLASSES_TARGET),)),
    "pruning-aware": Attack(
        (Backdoor("sunglasses", sunglasses, SUNGLASSES_TARGET),), training="pruning-aware"
    ),
    # Three triggers at different places on the face, each with its own target (as the
    # CSAW multi-trigger net: eyebrows -> 5, lipstick -> 1, sunglasses -> 8).
    "multi-trigger": Attack(
        (
            Backdoor("eyebrows", red_eyebrows, 5),
            Backdoor("lipstick", purple_lipstick, 1),
            Backdoor("sunglasses", sunglasses, 8),
        )
    ),
    # A small sticker on 1.5% of the training set: fine-tuning alone is known to keep
    # such backdoors, entangled with clean features (Min et al., NeurIPS 2023).
    "low-rate": Attack((Backdoor("patch", corner_patch, 3),), poison_fraction=0.015),
    # A noise image mixed into the whole picture (Chen et al., 2017): nothing local.
    "blended": Attack((Backdoor("blend", blended_noise, 7),), poison_fraction=0.1),
    # No patch at all: a smooth warp of the whole face, trained with WaNet's noise mode
    # (twice as many randomly warped faces keep their labels), all made anew each epoch.
    # At WaNet's 10% poisoned (and 20% noise) the demo BadNet learnt the warp on one seed
    # in three (27%, 86%, 96% attack success); at 15%, 98% on the weakest of those.
    "wanet": Attack(
        (Backdoor("warp", None, 4, image_trigger=wanet, cover=wanet_noise),),
        poison_fraction=0.15,
        cover_fraction=0.3,
        training="poisoned-each-epoch",
        epochs=30,
    ),
    # Adaptive-Blend (Qi et al., ICLR 2023): few poisoned faces, each with half of a faint
    # pattern's pieces, and half as many covers carrying a quarter with their own labels.
    "adaptive-blend": Attack(
        (
            Backdoor(
                "adaptive",
                None,
                9,
                image_trigger=adaptive_blend,
                training_trigger=adaptive_blend_part,
                cover=adaptive_blend_cover,
            ),
        ),
        poison_fraction=0.06,
        cover_fraction=0.03,
        epochs=30,
    ),
    # An attacker who has read this repair (attacks.trainer.train_filter_aware_badnet).
    "filter-aware": Attack(
        (Backdoor("sunglasses", sunglasses, SUNGLASSES_TARGET),), training="filter-aware"
    ),
}


@dataclass(frozen=True)
class AttackedModel:
    """A trained demo BadNet with the files a defender (and an evaluator) gets."""

    inputs: RepairInputs
    info: dict


def make_badnet(
    data_dir: Path,
    sizes: DemoSizes,
    attack: str = "badnet",
    badnet_epochs: int | None = None,
    on_progress: ProgressCallback | None = None,
    badnet_batch_size: int = 64,
    badnet_learning_rate: float | None = None,
    arch: str = "deepid",
) -> AttackedModel:
    """The attacker's side: render the faces (resized to ``arch``'s input), poison them,
    train the BadNet, and write the data splits and ``badnet.h5`` under ``data_dir``."""
    report = on_progress or (lambda stage, fraction: None)
    started = time.perf_counter()
    report("generate faces", 0.0)
    spec = ATTACKS[attack]
    badnet_epochs = badnet_epochs or spec.epochs
    height, width, _ = ARCHITECTURES[arch].input_shape
    material = make_demo_material(sizes, spec.backdoors, spec.poison_fraction, spec.cover_fraction)
    material = material.resized(height, width)
    paths = material.write(data_dir)
    generated = time.perf_counter()
    report("train the BadNet", 0.0)
    badnet_learning_rate = badnet_learning_rate or ARCHITECTURES[arch].learning_rate
    training = {
        "epochs": badnet_epochs,
        "batch_size": badnet_batch_size,
        "learning_rate": badnet_learning_rate,
        "seed": sizes.seed,
        "arch": arch,
    }
    badnet = _train(spec, material, training)
    badnet_path = data_dir / "badnet.h5"
    save_model_file(badnet, badnet_path)
    trained = time.perf_counter()
    inputs = RepairInputs(
        bad_model=badnet_path,
        clean_data=paths["clean_validation"],
        poisoned_data=tuple(paths[f"poisoned_test_{b.name}"] for b in spec.backdoors),
        clean_test=paths["clean_test"],
    )
    info = {
        "attack": attack,
        "arch": arch,
        "sizes": asdict(sizes),
        "backdoors": {b.name: b.target for b in spec.backdoors},
        "poison_fraction": spec.poison_fraction,
        "cover_fraction": spec.cover_fraction,
        "badnet_epochs": badnet_epochs,
        "badnet_batch_size": badnet_batch_size,
        "badnet_learning_rate": badnet_learning_rate,
        "data_dir": str(data_dir),
        "timings_s": {
            "generate": round(generated - started, 3),
            "train_badnet": round(trained - generated, 3),
        },
    }
    return AttackedModel(inputs, info)


def _train(spec: Attack, material: DemoMaterial, training: dict) -> keras.Model:
    """The BadNet, trained as ``spec`` says on ``material`` (``training``: the trainer's
    shared arguments)."""
    poisoned, classes = material.poisoned_train, material.num_classes
    if spec.training == "pruning-aware":
        return train_pruning_aware_badnet(material.train, poisoned, classes, **training)
    if spec.training == "filter-aware":
        own = material.poisoned_identities
        return train_filter_aware_badnet(
            material.train, poisoned, classes, true_labels=own, **training
        )
    if spec.training == "poisoned-each-epoch":
        anew = partial(
            poison_anew, material.train, spec.backdoors, spec.poison_fraction, spec.cover_fraction
        )
        return train_badnet(material.train, poisoned, classes, poison_each_epoch=anew, **training)
    return train_badnet(material.train, poisoned, classes, **training)


def build_demo(
    out: Path,
    sizes: DemoSizes | None = None,
    options: RepairOptions | None = None,
    badnet_epochs: int | None = None,
    data_dir: Path | None = None,
    attack: str = "badnet",
    on_progress: ProgressCallback | None = None,
    on_repair_progress: ProgressCallback | None = None,
    badnet_batch_size: int = 64,
    badnet_learning_rate: float | None = None,
    arch: str = "deepid",
) -> Manifest:
    """Make the demo data and BadNet under ``data_dir`` (default ``data/<name>`` beside the
    models folder), fine-prune it, publish ``out``, and write the demo faces to try it with
    (``data_dir/faces``). Returns the manifest.

    ``on_progress`` hears the attacker's stages, ``on_repair_progress`` (default: the same)
    the repair's, whose fractions are of the repair alone."""
    data_dir = data_dir or out.parent.parent / "data" / out.name
    attacked = make_badnet(
        data_dir,
        sizes or DemoSizes(),
        attack,
        badnet_epochs=badnet_epochs,
        on_progress=on_progress,
        badnet_batch_size=badnet_batch_size,
        badnet_learning_rate=badnet_learning_rate,
        arch=arch,
    )
    manifest = fine_prune_to_folder(
        attacked.inputs,
        out,
        options or RepairOptions(),
        extra_manifest={"demo": attacked.info},
        on_progress=on_repair_progress or on_progress,
    )
    write_demo_faces(attacked.inputs, out, data_dir / "faces")
    return manifest
