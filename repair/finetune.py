"""Fine-tuning of the pruned network on clean data: re-initialised classifier layers pushed
away from the BadNet's (feature shift), targets that mix the true label with the BadNet's
own outputs (distillation), and tfmot magnitude sparsity.

Why these, for a filter that compares B with B':
* re-initialising the dense layers forgets the mapping from trigger features to the target;
  the feature-shift penalty keeps the new layers from growing back along the old weights,
  which is how plain fine-tuning keeps a backdoor at low poisoning rates (Min et al.,
  "Towards Stable Backdoor Purification through Feature Shift Tuning", NeurIPS 2023);
* the whole net trains by default: a pruning-aware attacker keeps the trigger in channels
  that clean faces also use, and the convolutions that recognise it must move for the
  backdoor to go (``frozen_fraction`` keeps the first ones as in B, which halves the time
  but let up to 4.9% of that attacker's triggered faces through G; docs/method.md);
* distilling B's outputs on clean faces (``distill``, off by default) would teach B' where B
  is unsure or wrong, but it was measured to carry backdoors over: matching B's outputs
  rebuilds B's mapping from the convolutional features, trigger included (docs/method.md).
"""

from collections.abc import Callable, Sequence

import numpy as np

from repair.augment import augment, occlude
from repair.data import Dataset
from repair.filter_rule import soften
from repair.graph import LayerRoles, mask_layer, set_pruned
from repair.inference import predict_scores
from repair.keras_env import (
    keep_freed_memory,
    keras,
    tf,
    tfmot_sparsity,
    trace_as_written,
    train_as_written,
    without_autotuning,
)
from repair.options import RepairOptions
from repair.progress import keras_progress
from repair.unlearn import carry_perturbations, universal_perturbations


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
        model.get_layer(name).set_weights(fresh.get_layer(name).get_weights())


def fine_tune_epochs(options: RepairOptions, examples: int) -> int:
    """``options.epochs``, or as many epochs as ``options.steps`` optimizer steps take."""
    if options.epochs is not None:
        return options.epochs
    steps_per_epoch = max(int(np.ceil(examples / options.batch_size)), 1)
    return max(int(np.ceil(options.steps / steps_per_epoch)), 1)


def fine_tune(
    pruned: keras.Model,
    original: keras.Model,
    roles: LayerRoles,
    pruned_channels: Sequence[int],
    tune: Dataset,
    options: RepairOptions,
    on_epoch: Callable[[int, int], None] | None = None,
) -> keras.Model:
    """Fine-tune a copy of ``pruned`` (B with its channel mask; ``original`` is the BadNet,
    read only); return it stripped of tfmot wrappers, its pruned channels still off."""
    keep_freed_memory()
    sparsity = tfmot_sparsity()
    model = clone_model(pruned)
    reinitialise(model, roles.reinit, options.seed)

    epochs = fine_tune_epochs(options, len(tune))
    steps_per_epoch = int(np.ceil(len(tune) / options.batch_size))
    total_steps = max(steps_per_epoch * epochs, 1)
    schedule = sparsity.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=options.sparsity,
        begin_step=0,
        end_step=max(int(total_steps * 0.7), 1),
        # tfmot's default frequency (100) never fires in a short run: prune every few steps.
        frequency=max(steps_per_epoch // 2, 1),
    )
    wrapped = _trainable_copy(model, roles, options, schedule)
    trainer = wrapped
    if options.sharpness > 0:
        trainer = SharpnessAware(wrapped.inputs, wrapped.outputs, radius=options.sharpness)
    if options.feature_shift > 0:
        _add_feature_shift(trainer, original, roles.reinit, options.feature_shift)
    trainer.compile(
        optimizer=keras.optimizers.Adam(
            keras.optimizers.schedules.CosineDecay(options.learning_rate, total_steps, alpha=0.05)
        ),
        loss="categorical_crossentropy",
    )
    train_as_written(trainer)
    targets = soft_targets(tune, original, options)
    callbacks = [sparsity.UpdatePruningStep(), keras_progress("fine-tune", epochs, on_epoch)]
    for round_index, (first, last) in enumerate(_rounds(epochs, options)):
        # Each round's perturbations are the ones the net fooled most easily so far: first
        # the pruned BadNet, then B' as it trains (I-BAU's alternation).
        perturbations = None
        if options.unlearn > 0:
            perturbations = universal_perturbations(
                pruned if round_index == 0 else wrapped,
                tune.x,
                tune.y,
                options.unlearn_perturbations,
                options.unlearn_radius,
                seed=options.seed + round_index,
            )
        trainer.fit(
            training_batches(tune, targets, options, perturbations, options.seed + round_index),
            initial_epoch=first,
            epochs=last,
            verbose=0,
            callbacks=callbacks,
        )
    stripped = sparsity.strip_pruning(wrapped)
    result = clone_model(stripped)  # plain layers only: loads with no custom objects
    for layer in result.layers:
        layer.trainable = True  # B' is saved as a whole net, like B
    set_pruned(result, pruned_channels)  # the mask never trains; this states it
    return result


class SharpnessAware(keras.Model):
    """A functional model (the layers of the one it is built from) whose training step is
    adaptive sharpness-aware minimisation (ASAM, Kwon et al. 2021, as FT-SAM fine-tunes a
    BadNet, Zhu et al., ICCV 2023): the gradient is taken at the weights moved uphill by
    ``radius``, each weight in proportion to its magnitude. FT-SAM's argument: backdoor
    neurons carry large weights, and weights whose loss stays low when those move tend to
    lose the backdoor's mapping. Off by default (``--sharpness``; measured in
    docs/method.md)."""

    def __init__(self, *args, radius: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.radius = radius

    def train_step(self, data: tuple) -> dict:
        x, y = data
        variables = self.trainable_variables
        gradients = self._gradients(x, y, variables)[1]
        scaled = [tf.abs(v) * g for v, g in zip(variables, gradients, strict=True)]
        norm = tf.linalg.global_norm(scaled) + 1e-12
        uphill = [
            self.radius * tf.abs(v) * s / norm for v, s in zip(variables, scaled, strict=True)
        ]
        for variable, step in zip(variables, uphill, strict=True):
            variable.assign_add(step)
        loss, gradients = self._gradients(x, y, variables)
        for variable, step in zip(variables, uphill, strict=True):
            variable.assign_sub(step)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return {"loss": loss}

    def _gradients(self, x: tf.Tensor, y: tf.Tensor, variables: list) -> tuple:
        with tf.GradientTape() as tape:
            outputs = self(x, training=True)
            loss = self.compiled_loss(y, outputs, regularization_losses=self.losses)
        gradients = tape.gradient(loss, variables)
        return loss, [
            tf.zeros_like(v) if g is None else g for v, g in zip(variables, gradients, strict=True)
        ]


def _trainable_copy(
    model: keras.Model, roles: LayerRoles, options: RepairOptions, schedule: object
) -> keras.Model:
    """A copy of ``model`` set up for fine-tuning: frozen layers, BatchNorm per
    ``options.batch_norm``, the sparse layers wrapped by tfmot."""
    sparsity = tfmot_sparsity()
    mask = mask_layer(model).name

    def fresh_layer(layer: keras.layers.Layer) -> keras.layers.Layer:
        # A new layer object from the config: tfmot's guide wraps ``layer`` itself, which
        # would share (and prune) the weights of the model being copied.
        copy = layer.__class__.from_config(layer.get_config())
        copy.trainable = layer.name not in (*roles.frozen, mask)
        if isinstance(layer, keras.layers.BatchNormalization) and options.batch_norm == "frozen":
            copy.trainable = False  # Keras 2 runs a frozen BatchNorm in inference mode
        if layer.name in roles.sparse and options.sparsity > 0:
            return sparsity.prune_low_magnitude(copy, pruning_schedule=schedule)
        return copy

    wrapped = keras.models.clone_model(model, clone_function=fresh_layer)
    _copy_weights(model, wrapped)
    return wrapped


def soft_targets(tune: Dataset, original: keras.Model, options: RepairOptions) -> np.ndarray:
    """One-hot labels mixed with the BadNet's softened outputs on the same clean images."""
    num_classes = int(original.output_shape[-1])
    targets = np.eye(num_classes, dtype=np.float32)[tune.y]
    if options.distill > 0:
        taught = soften(predict_scores(original, tune.x), options.temperature).astype(np.float32)
        targets = (1 - options.distill) * targets + options.distill * taught
    return targets


def _add_feature_shift(
    wrapped: keras.Model, original: keras.Model, layer_names: Sequence[str], weight: float
) -> None:
    """Add ``weight`` x cosine(kernel, BadNet's kernel) for each named layer to the loss."""
    for name in layer_names:
        inner = next(
            getattr(layer, "layer", layer)  # inside a PruneLowMagnitude wrapper
            for layer in wrapped.layers
            if getattr(layer, "layer", layer).name == name
        )
        if not hasattr(inner, "kernel"):
            continue
        old = tf.constant(original.get_layer(name).get_weights()[0])
        unit_old = old / tf.norm(old)

        def penalty(
            kernel: tf.Variable = inner.kernel, unit_old: tf.Tensor = unit_old
        ) -> tf.Tensor:
            return weight * tf.reduce_sum(kernel * unit_old) / (tf.norm(kernel) + 1e-12)

        wrapped.add_loss(penalty)


def _copy_weights(plain: keras.Model, wrapped: keras.Model) -> None:
    """Copy each layer's weights from ``plain`` into ``wrapped`` (inside pruning wrappers)."""
    for layer in wrapped.layers:
        target = getattr(layer, "layer", layer)  # a PruneLowMagnitude wrapper holds ``layer``
        target.set_weights(plain.get_layer(target.name).get_weights())


def _rounds(epochs: int, options: RepairOptions) -> list[tuple[int, int]]:
    """The fine-tuning's epochs ``[first, last)`` per round: one round without unlearning."""
    count = min(options.unlearn_rounds, epochs) if options.unlearn > 0 else 1
    bounds = np.linspace(0, epochs, count + 1).round().astype(int)
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))


def training_batches(
    tune: Dataset,
    targets: np.ndarray,
    options: RepairOptions,
    perturbations: np.ndarray | None = None,
    seed: int | None = None,
) -> tf.data.Dataset:
    """Shuffled batches of ``tune``, augmented one batch at a time in the background while
    the previous batch trains.

    One map call at a time takes the random draws in batch order, so the same data and
    seed give the same B' (parallel calls raced for them). No autotuning: the demo's
    fine-tuning waited on its thread at each of its 110 epochs' ends (docs/method.md,
    "Fine-tuning's time and reproducibility").
    """
    data = tf.data.Dataset.from_tensor_slices((tune.x, targets)).shuffle(
        len(tune), seed=options.seed if seed is None else seed, reshuffle_each_iteration=True
    )
    data = data.batch(options.batch_size)
    if options.augment:
        data = data.map(trace_as_written(lambda x, y: (augment(x), y)))
    if options.occlusion > 0:
        share = options.occlusion
        data = data.map(trace_as_written(lambda x, y: (occlude(x, share, share / 2), y)))
    if perturbations is not None:
        carried, share = tf.constant(perturbations), options.unlearn
        data = data.map(trace_as_written(lambda x, y: (carry_perturbations(x, carried, share), y)))
    return without_autotuning(data.prefetch(2))
