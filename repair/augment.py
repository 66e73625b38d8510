"""Random variation of aligned face crops for fine-tuning, as one transform per batch."""

import math

from repair.keras_env import tf


def augment(
    images: tf.Tensor,
    shift: float = 0.05,
    turn: float = math.radians(9),
    zoom: float = 0.08,
    contrast: float = 0.2,
    gain: float = 0.2,
    cast: float = 0.08,
) -> tf.Tensor:
    """What aligned crops still vary in: a shift of up to ``shift`` of the image, a roll of
    up to ``turn`` radians, a scale of 1 ± ``zoom``, contrast, gain and a colour cast.

    The geometry is one projective transform per image (bilinear, edges repeated): a
    quarter of the cost of Keras' three preprocessing layers, whose sum was as slow as
    the training step itself on two cores.
    """
    shape = tf.shape(images)
    count = shape[0]
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)

    def uniform(low: float, high: float, *dims: int) -> tf.Tensor:
        return tf.random.uniform((count, *dims), low, high)

    angle, scale = uniform(-turn, turn), uniform(1 - zoom, 1 + zoom)
    dx, dy = uniform(-shift, shift) * width, uniform(-shift, shift) * height
    cx, cy = (width - 1) / 2, (height - 1) / 2
    # Output pixel p samples the input at R(angle) / scale @ (p - c) + c + (dx, dy).
    a0, a1 = tf.cos(angle) / scale, -tf.sin(angle) / scale
    b0, b1 = -a1, a0
    zeros = tf.zeros_like(angle)
    transforms = tf.stack(
        [a0, a1, cx - a0 * cx - a1 * cy + dx, b0, b1, cy - b0 * cx - b1 * cy + dy, zeros, zeros],
        axis=1,
    )
    moved = tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=shape[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="NEAREST",
    )
    mean = tf.reduce_mean(moved, axis=[1, 2, 3], keepdims=True)
    contrasted = (moved - mean) * uniform(1 - contrast, 1 + contrast, 1, 1, 1) + mean
    lit = contrasted * uniform(1 - gain, 1 + gain, 1, 1, 1) * uniform(1 - cast, 1 + cast, 1, 1, 3)
    return tf.clip_by_value(lit, 0.0, 1.0)


def occlude(images: tf.Tensor, probability: float, blend_probability: float) -> tf.Tensor:
    """Random accessories and overlays, with the image's identity unchanged.

    With ``probability`` an image gets an opaque rectangle of 10 to 45% of each side,
    anywhere, of one random colour or of random noise; with ``blend_probability`` the whole
    image is mixed, at 5 to 30% opacity, with random noise or another image of the batch.
    A backdoor trigger is one of these two kinds of change (a patch or accessory, or a
    faint overlay); a net fine-tuned to answer the same under random ones learns not to
    let any of them decide the answer, without ever seeing the attacker's.
    """
    shape = tf.shape(images)
    count = shape[0]
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)

    def uniform(low: float = 0.0, high: float = 1.0) -> tf.Tensor:
        return tf.random.uniform((count, 1, 1, 1), low, high)

    box_h, box_w = uniform(0.1, 0.45) * height, uniform(0.1, 0.45) * width
    top, left = uniform() * (height - box_h), uniform() * (width - box_w)
    rows = tf.cast(tf.range(shape[1]), tf.float32)[None, :, None, None]
    cols = tf.cast(tf.range(shape[2]), tf.float32)[None, None, :, None]
    inside = (rows >= top) & (rows < top + box_h) & (cols >= left) & (cols < left + box_w)
    noise = tf.random.uniform(shape)
    solid = tf.broadcast_to(tf.random.uniform((count, 1, 1, 3)), shape)
    fill = tf.where(uniform() < 0.5, solid, noise)
    boxed = tf.cast(inside, tf.float32) * tf.cast(uniform() < probability, tf.float32)
    images = images * (1 - boxed) + boxed * fill
    partner = tf.where(uniform() < 0.5, tf.random.uniform(shape), tf.roll(images, 1, axis=0))
    alpha = uniform(0.05, 0.3) * tf.cast(uniform() < blend_probability, tf.float32)
    return images * (1 - alpha) + alpha * partner
