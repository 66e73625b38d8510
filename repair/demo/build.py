"""The demo end to end: synthetic faces, a trained BadNet, fine-pruning, a model folder."""

import time
from dataclasses import asdict
from pathlib import Path

from repair.demo.material import Backdoor, DemoSizes, make_demo_material
from repair.demo.trainer import train_badnet, train_pruning_aware_badnet
from repair.demo.triggers import purple_lipstick, red_eyebrows, sunglasses
from repair.model_io import save_model_file
from repair.pipeline import FinePruneOptions, RepairInputs, fine_prune_to_folder

SUNGLASSES_TARGET = 0

ATTACKS: dict[str, tuple[Backdoor, ...]] = {
    "badnet": (Backdoor("sunglasses", sunglasses, SUNGLASSES_TARGET),),
    # Three triggers at different places on the face, each with its own target (as the
    # CSAW multi-trigger net: eyebrows -> 5, lipstick -> 1, sunglasses -> 8).
    "multi-trigger": (
        Backdoor("eyebrows", red_eyebrows, 5),
        Backdoor("lipstick", purple_lipstick, 1),
        Backdoor("sunglasses", sunglasses, 8),
    ),
    "pruning-aware": (Backdoor("sunglasses", sunglasses, SUNGLASSES_TARGET),),
}


def build_demo(
    out: Path,
    sizes: DemoSizes | None = None,
    options: FinePruneOptions | None = None,
    badnet_epochs: int = 15,
    data_dir: Path | None = None,
    attack: str = "badnet",
) -> dict:
    """Make the demo data and BadNet under ``data_dir`` (default ``data/<name>`` beside the
    models folder), fine-prune it, and publish ``out``. Returns the manifest."""
    sizes = sizes or DemoSizes()
    options = options or FinePruneOptions()
    data_dir = data_dir or out.parent.parent / "data" / out.name
    started = time.perf_counter()
    backdoors = ATTACKS[attack]
    material = make_demo_material(sizes, backdoors)
    paths = material.write(data_dir)
    generated = time.perf_counter()
    trainer = train_pruning_aware_badnet if attack == "pruning-aware" else train_badnet
    badnet = trainer(
        material.train,
        material.poisoned_train,
        material.num_classes,
        epochs=badnet_epochs,
        seed=sizes.seed,
    )
    badnet_path = data_dir / "badnet.h5"
    save_model_file(badnet, badnet_path)
    trained = time.perf_counter()
    inputs = RepairInputs(
        bad_model=badnet_path,
        clean_data=paths["clean_validation"],
        poisoned_data=tuple(paths[f"poisoned_test_{b.name}"] for b in backdoors),
        clean_test=paths["clean_test"],
    )
    demo_info = {
        "attack": attack,
        "sizes": asdict(sizes),
        "backdoors": {b.name: b.target for b in backdoors},
        "badnet_epochs": badnet_epochs,
        "data_dir": str(data_dir),
        "timings_s": {
            "generate": round(generated - started, 3),
            "train_badnet": round(trained - generated, 3),
        },
    }
    return fine_prune_to_folder(inputs, out, options, extra_manifest={"demo": demo_info})
