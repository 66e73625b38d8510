"""Deterministic synthetic face identities at 55 x 47 RGB.

Each identity has its own face shape, skin, hair, eyes, brows, nose, mouth and a faint
skin pattern; each image of it varies in position, scale, roll, lighting, colour cast,
background and sensor noise. Shapes are drawn in face coordinates (u across, v down,
about -1..1 over the face), so a trigger drawn in the same frame moves with the face
as a real accessory would.
"""

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

HEIGHT, WIDTH = 55, 47

FaceOverlay = Callable[["FaceFrame"], tuple[np.ndarray, np.ndarray]]
"""Something worn on a face: (colour (N,H,W,3), opacity (N,H,W)) in the frame given."""


@dataclass(frozen=True)
class FaceFrame:
    """Face coordinates of every pixel of a batch of images: ``u``, ``v`` are (N, H, W)."""

    u: np.ndarray
    v: np.ndarray
    identity: "IdentityTable"
    ids: np.ndarray


@dataclass(frozen=True)
class IdentityTable:
    """Per-identity appearance parameters, one row per identity."""

    skin: np.ndarray  # (K, 3)
    hair: np.ndarray  # (K, 3)
    iris: np.ndarray  # (K, 3)
    lips: np.ndarray  # (K, 3)
    face_ab: np.ndarray  # (K, 2) half-width, half-height
    hairline: np.ndarray  # (K,) v of the hairline
    fringe: np.ndarray  # (K,) slope of the fringe
    eye_xy: np.ndarray  # (K, 2) eye offset across, eye height
    eye_size: np.ndarray  # (K, 2)
    brow: np.ndarray  # (K, 3) height above eye, thickness, tilt
    nose: np.ndarray  # (K, 2) length, width
    mouth: np.ndarray  # (K, 3) height, half-width, thickness
    pattern: np.ndarray  # (K, 3, 4) three waves: freq u, freq v, phase, amplitude
    beard: np.ndarray  # (K,) opacity of a beard (0 for most)


def make_identities(count: int, seed: int) -> IdentityTable:
    """Draw ``count`` identities deterministically from ``seed``."""
    rng = np.random.default_rng(seed)

    def uniform(low: float, high: float, *shape: int) -> np.ndarray:
        return rng.uniform(low, high, size=(count, *shape))

    tone = uniform(0.0, 1.0)
    skin = np.stack([0.45 + 0.5 * tone, 0.30 + 0.45 * tone, 0.20 + 0.40 * tone], axis=1)
    skin = skin + uniform(-0.06, 0.06, 3)
    hair_shade = uniform(0.05, 0.8)[:, None]
    hair = np.clip(hair_shade * np.array([1.0, 0.8, 0.55]) + uniform(-0.08, 0.08, 3), 0, 1)
    pattern = np.concatenate(
        [
            uniform(1.0, 5.0, 3, 1),
            uniform(1.0, 5.0, 3, 1),
            uniform(0, 2 * np.pi, 3, 1),
            uniform(0.03, 0.10, 3, 1),
        ],
        axis=2,
    )
    return IdentityTable(
        skin=np.clip(skin, 0, 1),
        hair=hair,
        iris=uniform(0.05, 0.6, 3),
        lips=np.clip(skin * np.array([0.95, 0.6, 0.6]) + uniform(-0.1, 0.05, 3), 0, 1),
        face_ab=np.stack([uniform(0.82, 1.02), uniform(1.12, 1.36)], axis=1),
        hairline=uniform(-1.05, -0.6),
        fringe=uniform(-0.35, 0.35),
        eye_xy=np.stack([uniform(0.30, 0.44), uniform(-0.34, -0.18)], axis=1),
        eye_size=np.stack([uniform(0.12, 0.19), uniform(0.06, 0.10)], axis=1),
        brow=np.stack(
            [uniform(0.14, 0.24), uniform(0.035, 0.08), uniform(-0.3, 0.3)],
            axis=1,
        ),
        nose=np.stack([uniform(0.25, 0.45), uniform(0.07, 0.14)], axis=1),
        mouth=np.stack(
            [uniform(0.42, 0.62), uniform(0.18, 0.32), uniform(0.04, 0.08)],
            axis=1,
        ),
        pattern=pattern,
        beard=np.where(uniform(0, 1) < 0.2, uniform(0.3, 0.7), 0.0),
    )


def render_faces(
    identity: IdentityTable,
    ids: np.ndarray,
    seed: int,
    overlays: tuple[FaceOverlay, ...] = (),
    chunk: int = 512,
    block: int = 32,
) -> np.ndarray:
    """Render one image per entry of ``ids`` as float32 (N, 55, 47, 3) in [0, 1].

    ``overlays`` (triggers) are blended onto the face before lighting and noise, like an
    accessory photographed with the face. The same ``seed`` gives the same images.

    The random draws are made ``chunk`` images at a time (which images they go to depends
    on it); the drawing is done ``block`` images at a time, whose arrays stay in the CPU's
    cache (about twice as fast as whole chunks, and the same pixels).
    """
    rng = np.random.default_rng(seed)
    out = np.empty((len(ids), HEIGHT, WIDTH, 3), dtype=np.float32)
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        shots = _Shots.draw(rng, len(part))
        for first in range(0, len(part), block):
            last = min(first + block, len(part))
            out[start + first : start + last] = _render(
                identity, part[first:last], shots.rows(first, last), overlays
            )
    return out


@dataclass(frozen=True)
class _Shots:
    """What varies from one photograph to the next: pose, background, lighting, noise."""

    cy: np.ndarray
    cx: np.ndarray
    scale: np.ndarray
    yaw: np.ndarray
    angle: np.ndarray
    background: np.ndarray
    ramp: np.ndarray
    gain: np.ndarray
    slope: np.ndarray
    cast: np.ndarray
    noise: np.ndarray

    @staticmethod
    def draw(rng: np.random.Generator, n: int) -> "_Shots":
        """Draw ``n`` shots (this order of draws fixes which image gets which values)."""
        pose = {
            "cy": 28.0 + rng.uniform(-2.5, 2.5, size=(n, 1, 1)),
            "cx": 23.0 + rng.uniform(-2.5, 2.5, size=(n, 1, 1)),
            "scale": 17.5 * rng.uniform(0.92, 1.08, size=(n, 1, 1)),
            "yaw": rng.uniform(-0.12, 0.12, size=(n, 1, 1)),  # squashes one side: a turned head
            "angle": np.deg2rad(rng.uniform(-9, 9, size=(n, 1, 1))),
        }
        background = rng.uniform(0.05, 0.95, size=(n, 1, 1, 3))
        ramp = rng.uniform(-0.2, 0.2, size=(n, 1, 1, 3))
        return _Shots(
            **pose,
            background=background,
            ramp=ramp,
            gain=rng.uniform(0.65, 1.2, size=(n, 1, 1, 1)),
            slope=rng.uniform(-0.3, 0.3, size=(n, 1, 1, 1)),
            cast=rng.uniform(0.9, 1.1, size=(n, 1, 1, 3)),
            noise=rng.normal(0.0, 0.025, size=(n, HEIGHT, WIDTH, 3)),
        )

    def rows(self, first: int, last: int) -> "_Shots":
        return _Shots(**{f.name: getattr(self, f.name)[first:last] for f in fields(self)})


def _render(table: IdentityTable, ids: np.ndarray, shots: _Shots, overlays: tuple) -> np.ndarray:
    frame = _face_frame(table, ids, shots)
    u, v = frame.u, frame.v
    ramp = np.linspace(-1, 1, HEIGHT)[None, :, None, None] * shots.ramp
    image = np.broadcast_to(shots.background + ramp, (len(ids), HEIGHT, WIDTH, 3)).copy()

    a, b = table.face_ab[ids, 0, None, None], table.face_ab[ids, 1, None, None]
    skin_tone = table.skin[ids][:, None, None, :] * (1 + _skin_pattern(table, ids, u, v))[..., None]
    _paint(image, _soft((u / a) ** 2 + (v / b) ** 2 - 1, 0.08), skin_tone)
    _paint(
        image, table.beard[ids, None, None] * _beard_mask(table, ids, u, v), _color(table.hair, ids)
    )
    _paint(image, _hair_mask(table, ids, u, v, a, b), _color(table.hair, ids))
    _draw_eyes(image, table, ids, u, v)
    _paint(image, _brow_mask(table, ids, u, v), _color(table.hair * 0.6, ids))
    nose_len, nose_w = table.nose[ids, 0, None, None], table.nose[ids, 1, None, None]
    nose = _soft((u / nose_w) ** 2 + ((v - 0.05 - nose_len / 2) / (nose_len / 2)) ** 2 - 1, 0.25)
    _paint(image, 0.35 * nose, _color(table.skin * 0.6, ids))
    my, mw, mt = (table.mouth[ids, k, None, None] for k in range(3))
    _paint(image, _soft((u / mw) ** 2 + ((v - my) / mt) ** 2 - 1, 0.2), _color(table.lips, ids))
    for overlay in overlays:
        color, alpha = overlay(frame)
        _paint(image, alpha, color)

    shading = shots.gain * (1 + shots.slope * np.clip(u, -1.5, 1.5)[..., None]) * shots.cast
    image = image * shading + shots.noise
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def _face_frame(table: IdentityTable, ids: np.ndarray, shots: _Shots) -> FaceFrame:
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float64)
    dx, dy = cols[None] - shots.cx, rows[None] - shots.cy
    u = (np.cos(shots.angle) * dx + np.sin(shots.angle) * dy) / shots.scale
    v = (-np.sin(shots.angle) * dx + np.cos(shots.angle) * dy) / shots.scale
    u = u * (1 + shots.yaw * np.sign(u))
    return FaceFrame(u=u, v=v, identity=table, ids=ids)


def _skin_pattern(
    table: IdentityTable, ids: np.ndarray, u: np.ndarray, v: np.ndarray
) -> np.ndarray:
    waves = table.pattern[ids][:, :, :, None, None]  # (n, 3, 4, 1, 1)
    phase = (
        waves[:, :, 0] * u[:, None] * np.pi + waves[:, :, 1] * v[:, None] * np.pi + waves[:, :, 2]
    )
    return np.sum(waves[:, :, 3] * np.sin(phase), axis=1)


def _hair_mask(table: IdentityTable, ids: np.ndarray, u, v, a, b) -> np.ndarray:
    line = table.hairline[ids, None, None] + table.fringe[ids, None, None] * u
    on_head = _soft((u / (a * 1.12)) ** 2 + ((v + 0.1) / (b * 1.05)) ** 2 - 1, 0.08)
    above_line = _soft(v - line, 0.06)
    return on_head * above_line


def _beard_mask(table: IdentityTable, ids: np.ndarray, u, v) -> np.ndarray:
    a, b = table.face_ab[ids, 0, None, None], table.face_ab[ids, 1, None, None]
    in_face = _soft((u / a) ** 2 + (v / b) ** 2 - 1, 0.08)
    return in_face * _soft(table.mouth[ids, 0, None, None] - 0.12 - v, 0.08)


def _draw_eyes(image: np.ndarray, table: IdentityTable, ids: np.ndarray, u, v) -> None:
    ex, ey = table.eye_xy[ids, 0, None, None], table.eye_xy[ids, 1, None, None]
    ew, eh = table.eye_size[ids, 0, None, None], table.eye_size[ids, 1, None, None]
    for side in (-1.0, 1.0):
        du, dv = u - side * ex, v - ey
        white = _soft((du / ew) ** 2 + (dv / eh) ** 2 - 1, 0.3)
        _paint(image, white, np.array([0.92, 0.92, 0.9]))
        iris = _soft((du / (eh * 1.1)) ** 2 + (dv / (eh * 1.1)) ** 2 - 1, 0.3) * white
        _paint(image, iris, _color(table.iris, ids))


def _brow_mask(table: IdentityTable, ids: np.ndarray, u, v) -> np.ndarray:
    ex, ey = table.eye_xy[ids, 0, None, None], table.eye_xy[ids, 1, None, None]
    lift, thick, tilt = (table.brow[ids, k, None, None] for k in range(3))
    mask = np.zeros_like(u)
    for side in (-1.0, 1.0):
        du = u - side * ex
        centre = ey - lift + side * tilt * du * 0.5
        mask = np.maximum(
            mask, _soft(np.abs(du) - 0.2, 0.03) * _soft(np.abs(v - centre) - thick, 0.02)
        )
    return mask


def _soft(signed: np.ndarray, width: float) -> np.ndarray:
    """Anti-aliased inside-mask: 1 where ``signed`` < 0, 0 where > 0, smooth over ``width``."""
    mask = signed / width  # computed in place from here: the same values, no temporaries
    np.clip(mask, -30, 30, out=mask)
    np.exp(mask, out=mask)
    mask += 1.0
    return np.divide(1.0, mask, out=mask)


def _color(table_column: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return table_column[ids][:, None, None, :]


def _paint(image: np.ndarray, alpha: np.ndarray, color: np.ndarray) -> None:
    image *= 1 - alpha[..., None]
    image += alpha[..., None] * color
