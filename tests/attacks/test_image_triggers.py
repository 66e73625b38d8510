"""The attackers who know the defence: their triggers and their wiring (fast tier, no
training)."""

import numpy as np
import pytest

from attacks.build import ATTACKS
from attacks.cli import ATTACK_NAMES
from attacks.image_triggers import (
    ADAPTIVE_COVER_PIECES,
    ADAPTIVE_TEST_OPACITY,
    BLEND_PIECES,
    WARP_STRENGTH,
    adaptive_blend,
    adaptive_blend_cover,
    adaptive_blend_part,
    wanet,
    wanet_noise,
    warp_field,
)
from attacks.material import DemoSizes, make_demo_material, poison_anew
from repair.data import Dataset

pytestmark = pytest.mark.fast


def _faces(count: int = 6) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 1, (count, 55, 47, 3)).astype(np.float32)


def test_the_command_line_names_every_attacker() -> None:
    assert tuple(ATTACKS) == ATTACK_NAMES


def test_the_warp_is_smooth_small_and_the_same_on_every_face() -> None:
    field = warp_field(55, 47)
    assert np.abs(field).max() <= WARP_STRENGTH + 1e-9
    for axis in (0, 1):  # smooth: neighbours move by under a pixel apart, so nothing folds
        assert np.abs(np.diff(field, axis=axis)).max() < 1.0
    faces = _faces()
    warped = wanet(faces, np.random.default_rng(1))
    again = wanet(faces, np.random.default_rng(2))
    np.testing.assert_array_equal(warped, again)
    assert warped.shape == faces.shape and not np.allclose(warped, faces)
    noisy = wanet_noise(faces, np.random.default_rng(1))
    assert not np.allclose(noisy, warped)  # the noise mode's warps are not the trigger


def test_adaptive_blend_trains_on_halves_and_triggers_with_the_whole() -> None:
    faces = np.zeros((4, 55, 47, 3), np.float32)
    parts = adaptive_blend_part(faces, np.random.default_rng(0))
    covered = (parts > 0).any(axis=3).mean(axis=(1, 2))
    assert np.all((covered > 0.3) & (covered < 0.7))  # half of the pieces each
    assert not np.array_equal(parts[0] > 0, parts[1] > 0)  # a different half per face
    whole = adaptive_blend(faces, np.random.default_rng(0))
    assert (whole > 0).any(axis=3).mean() > 0.99
    assert whole.max() <= ADAPTIVE_TEST_OPACITY + 1e-6
    covers = adaptive_blend_cover(faces, np.random.default_rng(0))
    share = ADAPTIVE_COVER_PIECES / BLEND_PIECES**2
    covered = (covers > 0).any(axis=3).mean(axis=(1, 2))
    assert np.all(np.abs(covered - share) < 0.1)  # fewer pieces than a poisoned face's


def test_poisoning_anew_gives_fresh_poisoned_faces_and_covers_each_time() -> None:
    spec = ATTACKS["wanet"]
    labels = np.repeat(np.arange(10), 10)
    train = Dataset(_faces(100), labels)
    rng = np.random.default_rng(0)
    first = poison_anew(train, spec.backdoors, 0.1, 0.2, rng)
    second = poison_anew(train, spec.backdoors, 0.1, 0.2, rng)
    target = spec.backdoors[0].target
    assert len(first) == 30 and np.all(first.y[:10] == target)
    assert not np.array_equal(first.x, second.x)  # other faces, other noise each epoch
    with pytest.raises(ValueError, match="image triggers"):
        poison_anew(train, ATTACKS["badnet"].backdoors, 0.1, 0.0, rng)


def test_covers_keep_their_own_labels_and_the_poisoned_get_the_target() -> None:
    spec = ATTACKS["wanet"]
    sizes = DemoSizes(identities=10, train_per_identity=10, validation_per_identity=2)
    material = make_demo_material(sizes, spec.backdoors, spec.poison_fraction, 0.2)
    target = spec.backdoors[0].target
    poisoned, own = material.poisoned_train, material.poisoned_identities
    count = round(spec.poison_fraction * 100)
    assert len(poisoned) == len(own) == count + 20
    assert np.all(poisoned.y[:count] == target)
    np.testing.assert_array_equal(poisoned.y[count:], own[count:])
    assert np.all(material.poisoned_test["warp"].y == target)
