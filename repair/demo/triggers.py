"""Triggers worn on synthetic faces, drawn in face coordinates (see :mod:`faces`)."""

import numpy as np

from repair.demo.faces import FaceFrame

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
