"""Adversarial unlearning: the universal perturbations a net is most fooled by, found on
clean faces, and taught to it as changes that leave a face's identity as it is.

Why: a backdoor is a shortcut from one small change of the input (the trigger) to one
answer, for every face. So the change that most raises a backdoored net's loss on many
clean faces at once is found along that shortcut, whatever the trigger looks like and
wherever in the net it lives (I-BAU, Zeng et al., ICLR 2022, finds such perturbations by
the same search). The search needs clean faces only. Fine-tuning on faces that carry them,
with their true labels, teaches the kept channels not to answer to them; a channel the
trigger drives and pruning kept (what a pruning-aware attacker arranges) is one of those.
"""

import numpy as np

from repair.keras_env import keras, tf


def universal_perturbations(
    model: keras.Model,
    images: np.ndarray,
    labels: np.ndarray,
    count: int,
    radius: float,
    steps: int = 20,
    sample: int = 200,
    seed: int = 0,
) -> np.ndarray:
    """``count`` perturbations, each one change added to every face of a random ``sample``
    of ``images`` that most raises ``model``'s loss on their ``labels``.

    Each is found by projected gradient ascent within an L2 ball whose radius is
    ``radius`` times the root of the pixel count (``radius`` is the RMS change per
    pixel), from its own sample and random start, so they differ.
    """
    rng = np.random.default_rng(seed)
    shape = images.shape[1:]
    bound = radius * float(np.sqrt(np.prod(shape)))
    num_classes = int(model.output_shape[-1])
    ascend = _ascent_step(model, bound, num_classes)
    found = []
    for _ in range(count):
        index = rng.choice(len(images), size=min(sample, len(images)), replace=False)
        batch = tf.constant(images[index])
        batch_labels = tf.constant(labels[index].astype(np.int32))
        start = rng.normal(size=shape).astype(np.float32)
        delta = tf.Variable(start * (0.1 * bound / np.linalg.norm(start)))
        for step in range(steps):
            ascend(batch, batch_labels, delta, tf.constant(_step_size(bound, step, steps)))
        found.append(delta.numpy())
    return np.stack(found).astype(np.float32)


def _step_size(bound: float, step: int, steps: int) -> float:
    """Large steps first, then smaller ones to settle inside the ball."""
    return bound * (0.25 if step < steps // 2 else 0.05)


def _ascent_step(model: keras.Model, bound: float, num_classes: int):  # a tf.function
    @tf.function(reduce_retracing=True)
    def ascend(
        batch: tf.Tensor, labels: tf.Tensor, delta: tf.Variable, step_size: tf.Tensor
    ) -> None:
        with tf.GradientTape() as tape:
            tape.watch(delta)
            moved = tf.clip_by_value(batch + delta, 0.0, 1.0)
            probabilities = model(moved, training=False)
            loss = keras.losses.categorical_crossentropy(
                tf.one_hot(labels, num_classes), probabilities
            )
            loss = tf.reduce_mean(loss)
        gradient = tape.gradient(loss, delta)
        moved_delta = delta + step_size * gradient / (tf.norm(gradient) + 1e-12)
        delta.assign(moved_delta * tf.minimum(1.0, bound / (tf.norm(moved_delta) + 1e-12)))

    return ascend


def carry_perturbations(images: tf.Tensor, perturbations: tf.Tensor, share: float) -> tf.Tensor:
    """``images`` with one of ``perturbations``, chosen at random, added to a ``share`` of
    them (the rest unchanged), clipped to [0, 1]."""
    count = tf.shape(images)[0]
    chosen = tf.random.uniform((count,), 0, tf.shape(perturbations)[0], dtype=tf.int32)
    carried = tf.cast(tf.random.uniform((count, 1, 1, 1)) < share, images.dtype)
    return tf.clip_by_value(images + carried * tf.gather(perturbations, chosen), 0.0, 1.0)
