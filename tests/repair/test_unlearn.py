"""The unlearning perturbations (``--unlearn``): within their bound, and worse for the net
than random changes of the same size. Fast tier: a small untrained net, no data set."""

import numpy as np
import pytest

from repair.keras_env import keras, tf
from repair.unlearn import carry_perturbations, universal_perturbations

pytestmark = pytest.mark.fast


def _net() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.layers.Input((12, 10, 3)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )


def _loss(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> float:
    probabilities = model(np.clip(images, 0, 1), training=False).numpy()
    return float(-np.mean(np.log(probabilities[np.arange(len(labels)), labels] + 1e-12)))


def test_perturbations_stay_in_their_ball_and_raise_the_loss_more_than_noise() -> None:
    model = _net()
    rng = np.random.default_rng(0)
    images = rng.uniform(0.2, 0.8, (64, 12, 10, 3)).astype(np.float32)
    labels = model(images).numpy().argmax(axis=1)  # the net's own answers: low loss
    radius = 0.05
    found = universal_perturbations(model, images, labels, count=2, radius=radius, seed=1)
    assert found.shape == (2, 12, 10, 3)
    bound = radius * np.sqrt(12 * 10 * 3)
    assert np.all(np.linalg.norm(found.reshape(2, -1), axis=1) <= bound * 1.001)
    noise = rng.normal(size=(12, 10, 3)).astype(np.float32)
    noise *= bound / np.linalg.norm(noise)
    assert _loss(model, images + found[0], labels) > _loss(model, images + noise, labels)


def test_carried_to_the_asked_share_and_clipped() -> None:
    images = tf.fill((200, 4, 4, 3), 0.9)
    perturbations = tf.fill((1, 4, 4, 3), 0.5)
    none = carry_perturbations(images, perturbations, 0.0).numpy()
    np.testing.assert_allclose(none, 0.9)
    every = carry_perturbations(images, perturbations, 1.0).numpy()
    np.testing.assert_allclose(every, 1.0)  # 0.9 + 0.5, clipped
    some = carry_perturbations(images, perturbations, 0.5).numpy()
    assert 0.3 < np.mean(some[:, 0, 0, 0] == 1.0) < 0.7
