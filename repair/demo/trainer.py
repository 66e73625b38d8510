"""Train a BadNet on clean plus poisoned faces (the attacker's side, for demo material only)."""

import numpy as np

from repair.architecture import build_deepid
from repair.data import Dataset
from repair.keras_env import keras, tf
from repair.progress import KerasProgress


def train_badnet(
    clean: Dataset,
    poisoned: Dataset,
    num_classes: int,
    epochs: int = 20,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> keras.Model:
    """Train the DeepID network from scratch on ``clean`` and ``poisoned`` images mixed."""
    keras.utils.set_random_seed(seed)
    x = np.concatenate([clean.x, poisoned.x])
    y = np.concatenate([clean.y, poisoned.y])
    model = build_deepid(num_classes, tuple(clean.x.shape[1:]))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    dataset = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(2)
    )
    model.fit(dataset, epochs=epochs, verbose=0, callbacks=[KerasProgress("train BadNet", epochs)])
    return model
