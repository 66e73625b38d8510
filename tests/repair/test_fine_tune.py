"""What fine-tuning changes in the BadNet, read from a real repaired pair."""

from pathlib import Path

import numpy as np

from repair.model_io import load_model_file
from repair.options import RepairOptions


def test_fine_tuning_keeps_the_frozen_layers_and_trains_the_rest(tiny_root: Path) -> None:
    """The first convolutions come out of the repair exactly as in the BadNet; the pruned
    layer and every layer after it were trained."""
    folder = tiny_root / "models" / "demo"
    bad, repaired = (load_model_file(folder / name) for name in ("bad.h5", "repaired.h5"))
    frozen = RepairOptions().frozen_layers
    assert frozen == ("conv_1", "conv_2")
    for layer in bad.layers:
        if not layer.weights:
            continue
        same = all(
            np.array_equal(a, b)
            for a, b in zip(
                layer.get_weights(), repaired.get_layer(layer.name).get_weights(), strict=True
            )
        )
        assert same == (layer.name in frozen), layer.name
