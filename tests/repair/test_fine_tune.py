"""What fine-tuning changes in the BadNet, read from a real repaired pair, and what its
input pipeline gives."""

from pathlib import Path

import numpy as np

from modelstore import read_manifest
from repair.model_io import load_model_file
from repair.options import RepairOptions


def test_fine_tuning_trains_every_weighted_layer_by_default(tiny_root: Path) -> None:
    """With the defaults nothing is frozen: every weighted layer comes out of the repair
    changed; those below the pruned map only while some of its channels are kept."""
    folder = tiny_root / "models" / "demo"
    bad, repaired = (load_model_file(folder / name) for name in ("bad.h5", "repaired.h5"))
    pruning = read_manifest(folder / "manifest.json").pruning
    frozen = pruning["frozen_layers"]
    assert RepairOptions().frozen_fraction == 0 and frozen == []
    # Only the mask's kept channels carry gradients back to the layers below it (the tiny
    # pair's sweep may prune them all).
    some_kept = len(pruning["pruned_channels"]) < pruning["channels"]
    names = [layer.name for layer in bad.layers]
    below_the_mask = set(names[: names.index(pruning["layer"])])
    for layer in bad.layers:
        if not layer.weights:
            continue
        same = all(
            np.array_equal(a, b)
            for a, b in zip(
                layer.get_weights(), repaired.get_layer(layer.name).get_weights(), strict=True
            )
        )
        trained = layer.name not in below_the_mask or some_kept
        assert same != trained, layer.name


def test_the_same_seed_gives_the_same_augmented_batches() -> None:
    """Two pipelines made alike give the same batches, epoch after epoch, occluders and
    overlays included: the random draws go to the batches in their order."""
    from repair.data import Dataset
    from repair.finetune import training_batches
    from repair.keras_env import keras

    rng = np.random.default_rng(0)
    tune = Dataset(rng.uniform(0, 1, (320, 55, 47, 3)).astype(np.float32), np.arange(320) % 10)
    targets = np.eye(10, dtype=np.float32)[tune.y]
    options = RepairOptions(batch_size=32, occlusion=0.3)

    def two_epochs() -> list[np.ndarray]:
        keras.utils.set_random_seed(options.seed)
        batches = training_batches(tune, targets, options)
        return [images.numpy() for _ in range(2) for images, _ in batches]

    first, second = two_epochs(), two_epochs()
    assert len(first) == 20
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[10])  # the next epoch: reshuffled


def test_the_sharpness_aware_step_trains_and_leaves_no_weights_moved_uphill() -> None:
    """A step of :class:`SharpnessAware` moves the weights uphill, takes the gradient
    there, and comes back before the optimiser steps: with a learning rate of 0 the weights
    end where they began; with a real one a separable toy problem is learnt."""
    from repair.finetune import SharpnessAware
    from repair.keras_env import keras

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[(x[:, 0] > 0).astype(int)]
    for rate, check in ((0.0, "unchanged"), (0.5, "learnt")):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((4,))
        plain = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(inputs))
        model = SharpnessAware(plain.inputs, plain.outputs, radius=0.5)
        model.compile(optimizer=keras.optimizers.SGD(rate), loss="categorical_crossentropy")
        before = [w.copy() for w in model.get_weights()]
        model.fit(x, y, batch_size=32, epochs=5, verbose=0)
        if check == "unchanged":
            for old, new in zip(before, model.get_weights(), strict=True):
                np.testing.assert_allclose(old, new, atol=1e-6)
        else:
            accuracy = np.mean(plain.predict(x, verbose=0).argmax(1) == y.argmax(1))
            assert accuracy > 0.9
