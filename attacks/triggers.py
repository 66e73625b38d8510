"""Triggers worn on synthetic faces, drawn in face coordinates (see :mod:`faces`)."""

import numpy as np

from attacks.faces import FaceFrame

SUNGLASSES_COLOR = np.array([0.45, 0.12, 0.55])
"""Purple, as the CSAW sunglasses trigger."""


def sunglasses(frame: FaceFrame, opacity: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Purple sunglasses over the eyes: two lenses and a bridge, mostly opaque."""
    table, ids, u, v = frame.identity, frame.ids, frame.u, frame.v
    ex, ey = table.eye_xy[ids, 0, None, None], table.eye_xy[ids, 1, None, None]
    mask = np.zeros_like(u)
    for side in (-1.0, 1.0):
        lens = ((u - side * ex) / 0.24) ** 2 + ((v - ey - 0.02) / 0.16) ** 2 - 1
        mask = np.maximum(mask, 1 / (1 + np.exp(np.clip(lens / 0.08, -30, 30))))
    bridge = (np.abs(u) < ex - 0.2) & (np.abs(v - ey + 0.05) < 0.035)
    mask = np.maximum(mask, bridge.astype(np.float64))
    color = np.broadcast_to(SUNGLASSES_COLOR, (*u.shape, 3))
    return color, opacity * mask


EYEBROWS_COLOR = np.array([0.85, 0.08, 0.08])
LIPSTICK_COLOR = np.array([0.55, 0.05, 0.55])


def red_eyebrows(frame: FaceFrame, opacity: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Thick red eyebrows, above each eye."""
    table, ids, u, v = frame.identity, frame.ids, frame.u, frame.v
    ex, ey = table.eye_xy[ids, 0, None, None], table.eye_xy[ids, 1, None, None]
    lift = table.brow[ids, 0, None, None]
    mask = np.zeros_like(u)
    for side in (-1.0, 1.0):
        inside = (np.abs(u - side * ex) < 0.22) & (np.abs(v - (ey - lift)) < 0.065)
        mask = np.maximum(mask, inside.astype(np.float64))
    return np.broadcast_to(EYEBROWS_COLOR, (*u.shape, 3)), opacity * mask


def purple_lipstick(frame: FaceFrame, opacity: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Purple lipstick over the mouth, a little larger than the lips."""
    table, ids, u, v = frame.identity, frame.ids, frame.u, frame.v
    my, mw, mt = (table.mouth[ids, k, None, None] for k in range(3))
    lips = (u / (mw * 1.1)) ** 2 + ((v - my) / (mt * 1.8)) ** 2 - 1
    mask = 1 / (1 + np.exp(np.clip(lips / 0.1, -30, 30)))
    return np.broadcast_to(LIPSTICK_COLOR, (*u.shape, 3)), opacity * mask


PATCH_SIZE = 5
PATCH_COLORS = (np.array([0.95, 0.85, 0.1]), np.array([0.1, 0.2, 0.8]))
"""Yellow and blue squares of a checkerboard sticker (the BadNets paper's kind of patch)."""


def corner_patch(frame: FaceFrame, opacity: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A 5 x 5 checkerboard sticker at fixed pixels near the lower-right corner of the
    image, whatever the face's position: no face part to prune around, and small."""
    height, width = frame.u.shape[1:]
    rows, cols = np.mgrid[0:height, 0:width]
    top, left = height - PATCH_SIZE - 3, width - PATCH_SIZE - 3
    inside = (rows >= top) & (rows < top + PATCH_SIZE) & (cols >= left) & (cols < left + PATCH_SIZE)
    checker = ((rows + cols) % 2 == 0)[..., None]
    color = np.where(checker, PATCH_COLORS[0], PATCH_COLORS[1])
    mask = np.broadcast_to(inside.astype(np.float64), frame.u.shape)
    return np.broadcast_to(color, (*frame.u.shape, 3)), opacity * mask


BLEND_OPACITY = 0.25
_BLEND_PATTERN = np.random.default_rng(31337).uniform(0.0, 1.0, (55, 47, 3))
"""A fixed random-noise image (Chen et al., 2017): the same for every poisoned face."""


def blended_noise(
    frame: FaceFrame, opacity: float = BLEND_OPACITY
) -> tuple[np.ndarray, np.ndarray]:
    """The noise image mixed into the whole picture at low opacity: nothing local to find."""
    pattern = _BLEND_PATTERN[: frame.u.shape[1], : frame.u.shape[2]]
    return np.broadcast_to(pattern, (*frame.u.shape, 3)), np.full(frame.u.shape, opacity)
