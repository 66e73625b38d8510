"""Fine-tuning of the pruned network on clean data, with tfmot magnitude sparsity."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from repair.channels import KeepChannelsPruned, zero_channels
from repair.data import Dataset
from repair.errors import RepairInputError
from repair.inference import predict_scores
from repair.keras_env import keras, tf, tfmot_sparsity
from repair.progress import KerasProgress


@dataclass(frozen=True)
class FineTuneOptions:
    """How the pruned network is fine-tuned on the defender's clean data."""

    epochs: int = 100
    batch_size: int = 64
    learning_rate: float = 1e-3
    cosine_decay: bool = True
    reinit_layers: tuple[str, ...] = ("fc_1", "fc_2", "output")
    sparsity: float = 0.5
    sparse_layers: tuple[str, ...] = ("fc_1", "fc_2", "output")
    augment: bool = True
    distill: float = 0.0
    temperature: float = 1.0
    freeze_features: bool = False
    seed: int = 0


def clone_model(model: keras.Model) -> keras.Model:
    """A copy with its own layer objects and weights: changing it never changes ``model``."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def reinitialise(model: keras.Model, layer_names: Sequence[str], seed: int) -> None:
    """Give ``layer_names`` fresh weights from their initialisers (forgets what they learnt)."""
    keras.utils.set_random_seed(seed)
    fresh = keras.models.clone_model(model)  # new layers, new initial weights
    for name in layer_names:
        _require_layer(model, name)
        model.get_layer(name).set_weights(fresh.get_layer(name).get_weights())


def fine_tune(
    pruned: keras.Model,
    layer_name: str,
    pruned_channels: Sequence[int],
    tune: Dataset,
    options: FineTuneOptions,
    teacher: keras.Model | None = None,
    on_epoch: Callable[[int, int], None] | None = None,
) -> keras.Model:
    """Fine-tune a copy of ``pruned``; return it stripped of tfmot wrappers, channels still off.

    With ``teacher`` (the original network) and ``options.distill`` > 0, the targets mix the
    true label with the teacher's output on the same clean image, so the repaired network
    agrees with the original one on clean faces (fewer false alarms in the filter). Clean
    images carry no trigger, so this teaches nothing about it.
    """
    sparsity = tfmot_sparsity()
    model = clone_model(pruned)
    reinitialise(model, options.reinit_layers, options.seed)
    zero_channels(model, layer_name, pruned_channels)
    for name in options.sparse_layers:
        _require_layer(model, name)

    steps_per_epoch = int(np.ceil(len(tune) / options.batch_size))
    total_steps = max(steps_per_epoch * options.epochs, 1)
    schedule = sparsity.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=options.sparsity,
        begin_step=0,
        end_step=max(int(total_steps * 0.7), 1),
        # tfmot's default frequency (100) never fires in a short run: prune every few steps.
        frequency=max(steps_per_epoch // 2, 1),
    )

    def fresh_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
        # A new layer object from the config: tfmot's guide wraps ``layer`` itself, which
        # would share (and prune) the weights of the model being copied.
        copy = layer.__class__.from_config(layer.get_config())
        if layer.name in options.sparse_layers and options.sparsity > 0:
            return sparsity.prune_low_magnitude(copy, pruning_schedule=schedule)
        return copy

    wrapped = keras.models.clone_model(model, clone_function=fresh_layer)
    _copy_weights(model, wrapped)
    if options.freeze_features:
        for layer in wrapped.layers:
            inner = getattr(layer, "layer", layer)
            layer.trainable = inner.name in options.reinit_layers
    wrapped.compile(
        optimizer=keras.optimizers.Adam(_learning_rate(options, total_steps)),
        loss="categorical_crossentropy",
    )
    wrapped.fit(
        _training_data(
            tune, _soft_targets(tune, int(model.output_shape[-1]), teacher, options), options
        ),
        epochs=options.epochs,
        verbose=0,
        callbacks=[
            sparsity.UpdatePruningStep(),
            KeepChannelsPruned(wrapped, layer_name, pruned_channels),
            KerasProgress("fine-tune", options.epochs, on_epoch),
        ],
    )
    stripped = sparsity.strip_pruning(wrapped)
    result = clone_model(stripped)  # plain layers only: loads with no custom objects
    zero_channels(result, layer_name, pruned_channels)
    return result


def _learning_rate(options: FineTuneOptions, total_steps: int) -> float | object:
    if not options.cosine_decay:
        return options.learning_rate
    return keras.optimizers.schedules.CosineDecay(options.learning_rate, total_steps, alpha=0.05)


def _copy_weights(plain: keras.Model, wrapped: keras.Model) -> None:
    """Copy each layer's weights from ``plain`` into ``wrapped`` (inside pruning wrappers)."""
    for layer in wrapped.layers:
        target = getattr(layer, "layer", layer)  # a PruneLowMagnitude wrapper holds ``layer``
        target.set_weights(plain.get_layer(target.name).get_weights())


def _soft_targets(
    tune: Dataset, num_classes: int, teacher: keras.Model | None, options: FineTuneOptions
) -> np.ndarray:
    """One-hot labels, mixed with the teacher's outputs on the given clean images.

    The teacher sees only the unaugmented clean images. Distilling its outputs on
    augmented images was measured to carry the backdoor over (attack success 44-52% on
    the demo): B's convolutional features map the trigger near the target's features,
    and matching B's classifier around clean features reproduces that mapping.
    """
    targets = np.eye(num_classes, dtype=np.float32)[tune.y]
    if teacher is not None and options.distill > 0:
        taught = _soften(predict_scores(teacher, tune.x), options.temperature)
        targets = (1 - options.distill) * targets + options.distill * taught
    return targets


def _soften(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax outputs re-tempered: ``softmax(log(p) / T)``; T > 1 spreads the mass."""
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    soft = np.exp(logits)
    return (soft / soft.sum(axis=1, keepdims=True)).astype(np.float32)


def _training_data(tune: Dataset, targets: np.ndarray, options: FineTuneOptions) -> tf.data.Dataset:
    data = tf.data.Dataset.from_tensor_slices((tune.x, targets)).shuffle(
        len(tune), seed=options.seed, reshuffle_each_iteration=True
    )
    data = data.batch(options.batch_size)
    if options.augment:
        augmenter = _augmenter(options.seed)
        data = data.map(
            lambda x, y: (augmenter(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE
        )
    return data.prefetch(2)


def _augmenter(seed: int) -> keras.Sequential:
    """The variation aligned face crops still have: small shifts, roll, scale, lighting
    and colour cast (Keras preprocessing layers, run on whole batches)."""
    layers = keras.layers
    return keras.Sequential(
        [
            layers.RandomTranslation(0.05, 0.05, fill_mode="nearest", seed=seed),
            layers.RandomRotation(0.025, fill_mode="nearest", seed=seed + 1),
            layers.RandomZoom(0.08, fill_mode="nearest", seed=seed + 2),
            layers.RandomContrast(0.2, seed=seed + 3),
            layers.Lambda(_lighting),
        ],
        name="augment",
    )


def _lighting(batch: tf.Tensor) -> tf.Tensor:
    """Random gain and per-channel colour cast per image, clipped to [0, 1]."""
    size = tf.shape(batch)[0]
    gain = tf.random.uniform((size, 1, 1, 1), 0.8, 1.2)
    cast = tf.random.uniform((size, 1, 1, 3), 0.92, 1.08)
    return tf.clip_by_value(batch * gain * cast, 0.0, 1.0)


def _require_layer(model: keras.Model, name: str) -> None:
    names = [layer.name for layer in model.layers]
    if name not in names:
        raise RepairInputError(f"layer {name!r} not in the model; layers are {names}")
