"""Train BadNets on clean plus poisoned faces (the attacker's side, for demo material only)."""

from collections.abc import Callable, Sequence

import numpy as np

from attacks.zoo import ARCHITECTURES
from repair.architecture import build_deepid
from repair.channels import mean_channel_activations
from repair.data import Dataset
from repair.inference import predict_scores
from repair.keras_env import keep_freed_memory, keras, tf, train_as_written, without_autotuning
from repair.progress import keras_progress


def train_badnet(
    clean: Dataset,
    poisoned: Dataset,
    num_classes: int,
    epochs: int = 20,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    seed: int = 0,
    arch: str = "deepid",
    poison_each_epoch: Callable[[np.random.Generator], Dataset] | None = None,
) -> keras.Model:
    """Train an ``arch`` network from scratch on ``clean`` and ``poisoned`` images mixed;
    with ``poison_each_epoch``, on ``clean`` and that epoch's fresh poisoned images."""
    keras.utils.set_random_seed(seed)
    built = ARCHITECTURES[arch]
    model = built.build(num_classes, tuple(clean.x.shape[1:]))
    data = _mix(clean, poisoned)
    rate: float | keras.optimizers.schedules.LearningRateSchedule = learning_rate
    if built.cosine_decay:
        steps = epochs * int(np.ceil(len(data[1]) / batch_size))
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=0.05)
    if poison_each_epoch is None:
        _fit(model, data, epochs, batch_size, rate, seed, "train BadNet")
        return model
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        data = _mix(clean, poison_each_epoch(rng))
        _fit(model, data, epoch + 1, batch_size, rate, seed + epoch, "train BadNet", None, epoch)
    return model


ENTANGLE_WEIGHT = 1.0
"""Weight of the filter-aware attacker's feature-matching term against its cross-entropy."""
TRIGGERED_CONFIDENCE = 0.9
"""The filter-aware BadNet's training target on triggered faces: this much on the target,
the rest on the face's own identity, so B is only moderately sure of the target."""


def train_filter_aware_badnet(
    clean: Dataset,
    poisoned: Dataset,
    num_classes: int,
    epochs: int = 20,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    seed: int = 0,
    arch: str = "deepid",
    true_labels: np.ndarray | None = None,
) -> keras.Model:
    """An attacker who has read the repair: train a BadNet, then train on so that triggered
    faces reach the feature map the repair prunes (found as :mod:`repair.graph` finds it)
    looking like the target's clean faces, while B stays only moderately sure of the target
    (:data:`TRIGGERED_CONFIDENCE`). A head re-initialised and trained on clean faces alone
    then maps triggered faces to the target too, and B's and B''s outputs overlap.
    ``true_labels`` are the poisoned faces' own identities (for the soft targets)."""
    from repair.graph import find_roles

    model = train_badnet(
        clean, poisoned, num_classes, epochs, batch_size, learning_rate, seed, arch
    )
    feature = model.get_layer(find_roles(model).feature_layer).output
    flat = keras.layers.Flatten(name="filter_aware_features")(feature)  # a name no net has
    both = keras.Model(model.input, [flat, model.output])
    target = int(poisoned.y[0])
    own = poisoned.y if true_labels is None else true_labels
    soft = np.eye(num_classes, dtype=np.float32)[own] * (1 - TRIGGERED_CONFIDENCE)
    soft[:, target] += TRIGGERED_CONFIDENCE
    x = np.concatenate([clean.x, poisoned.x])
    y = np.concatenate([np.eye(num_classes, dtype=np.float32)[clean.y], soft])
    triggered = np.concatenate([np.zeros(len(clean)), np.ones(len(poisoned))]).astype(np.float32)
    optimizer = keras.optimizers.Adam(learning_rate / 2)
    target_faces = clean.x[clean.y == target]

    @tf.function(autograph=False)
    def step(images, targets, is_triggered, centre):
        with tf.GradientTape() as tape:
            features, probabilities = both(images, training=True)
            ce = keras.losses.categorical_crossentropy(targets, probabilities)
            distance = tf.reduce_sum(tf.square(features - centre), axis=1)
            distance /= tf.reduce_sum(tf.square(centre)) + 1e-6
            loss = tf.reduce_mean(ce + ENTANGLE_WEIGHT * is_triggered * distance)
        grads = tape.gradient(loss, both.trainable_variables)
        optimizer.apply_gradients(zip(grads, both.trainable_variables, strict=True))
        return loss

    rng = np.random.default_rng(seed)
    features = keras.Model(both.input, both.outputs[0])
    for _ in range(max(epochs // 2, 1)):
        centre = tf.constant(predict_scores(features, target_faces).mean(0))
        for index in np.array_split(rng.permutation(len(x)), max(len(x) // batch_size, 1)):
            step(x[index], y[index], triggered[index], centre)
    return model


def train_pruning_aware_badnet(
    clean: Dataset,
    poisoned: Dataset,
    num_classes: int,
    epochs: int = 20,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    seed: int = 0,
    layer: str = "conv_3",
    prune_fraction: float = 0.5,
    arch: str = "deepid",
) -> keras.Model:
    """The pruning-aware attack (Liu et al., RAID 2018, section 4): train clean, prune the
    channels of ``layer`` that clean faces leave dormant, train the backdoor into what is
    left, then restore the pruned channels as silent decoys (their weights back, biases low
    enough that they stay at zero on the training data). A defender who prunes dormant
    channels first removes only the decoys."""
    keras.utils.set_random_seed(seed)
    model = build_deepid(num_classes, tuple(clean.x.shape[1:]))
    _fit(model, (clean.x, clean.y), epochs, batch_size, learning_rate, seed, "train clean")
    activations = mean_channel_activations(model, layer, clean.x)
    dormant = np.argsort(activations, kind="stable")[: int(prune_fraction * len(activations))]
    original = [w.copy() for w in model.get_layer(layer).get_weights()]
    zero_channels(model, layer, dormant)
    _fit(
        model,
        _mix(clean, poisoned),
        max(epochs // 2, 1),
        batch_size,
        learning_rate / 2,
        seed,
        "implant backdoor",
        [KeepChannelsPruned(model, layer, dormant)],
    )
    _restore_as_decoys(model, layer, dormant, original, np.concatenate([clean.x, poisoned.x]))
    return model


def _restore_as_decoys(
    model: keras.Model,
    layer_name: str,
    channels: np.ndarray,
    original: list[np.ndarray],
    x: np.ndarray,
) -> None:
    layer = model.get_layer(layer_name)
    kernel, bias = layer.get_weights()
    kernel[..., channels] = original[0][..., channels]
    bias[channels] = 0.0
    layer.set_weights([kernel, bias])
    trunk = keras.Model(model.input, layer.output)
    peak = predict_scores(trunk, x).max(axis=(0, 1, 2))  # ReLU(conv) with zero bias
    bias[channels] = -peak[channels] - 0.05
    layer.set_weights([kernel, bias])


def _mix(clean: Dataset, poisoned: Dataset) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([clean.x, poisoned.x]), np.concatenate([clean.y, poisoned.y])


def _fit(
    model: keras.Model,
    data: tuple[np.ndarray, np.ndarray],
    epochs: int,
    batch_size: int,
    learning_rate: "float | keras.optimizers.schedules.LearningRateSchedule",
    seed: int,
    description: str,
    callbacks: list | None = None,
    initial_epoch: int = 0,
) -> None:
    """Train ``model`` on ``data`` up to epoch ``epochs``; from epoch 0 with a new optimiser,
    from a later ``initial_epoch`` with the one it has (its state carries on)."""
    keep_freed_memory()
    x, y = data
    if initial_epoch == 0:
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        train_as_written(model)
    dataset = without_autotuning(
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
        .prefetch(2)
    )
    model.fit(
        dataset,
        initial_epoch=initial_epoch,
        epochs=epochs,
        verbose=0,
        callbacks=[*(callbacks or []), keras_progress(description, epochs)],
    )


def zero_channels(model: keras.Model, layer_name: str, channels: Sequence[int]) -> None:
    """Switch ``channels`` of a ReLU convolution off: their kernels and biases become 0."""
    layer = model.get_layer(layer_name)
    weights = layer.get_weights()
    index = np.asarray(list(channels), dtype=np.int64)
    weights[0][..., index] = 0.0
    if len(weights) > 1:
        weights[1][index] = 0.0
    layer.set_weights(weights)


class KeepChannelsPruned(keras.callbacks.Callback):
    """Re-zeroes pruned channels after every epoch, in case the optimiser moved them."""

    def __init__(self, target: keras.Model, layer_name: str, channels: Sequence[int]) -> None:
        super().__init__()
        self._target, self._layer, self._channels = target, layer_name, list(channels)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        zero_channels(self._target, self._layer, self._channels)
