"""Triggers applied to the finished image rather than worn on the face, for the attackers
who know the defence: a smooth warp (WaNet) and an adaptive blend.

Each is an :data:`ImageTrigger`: float images (N, H, W, 3) in [0, 1] and a random generator
in, triggered images out.
"""

from collections.abc import Callable

import numpy as np

ImageTrigger = Callable[[np.ndarray, np.random.Generator], np.ndarray]

WARP_GRID = 8
"""Control points per side of the warp field (WaNet's k). The paper's 4 makes a warp about
as smooth as a change of pose, and the demo's faces come in many poses. On 60 identities
(warps made anew each epoch), 4 planted 20-68% attack success and 8 planted 58-74%; on the
demo's 200, 8 planted 96%."""
WARP_STRENGTH = 3.0
"""Largest displacement of the warp, in pixels. WaNet's s = 0.5 moves CIFAR pixels by about
a quarter of a pixel, which a demo BadNet trained for tens of epochs on a few thousand faces
does not learn; 3 pixels is still a smooth warp of a 47-pixel-wide face, no edge or patch
added."""
WARP_NOISE = 1.0
"""Largest random displacement of the noise mode's warps, in pixels."""


def warp_field(height: int, width: int, seed: int = 4242) -> np.ndarray:
    """A fixed smooth displacement field (H, W, 2) in pixels: random control points on a
    ``WARP_GRID`` square, normalised to a mean magnitude of 1, upsampled bilinearly."""
    control = np.random.default_rng(seed).uniform(-1, 1, (WARP_GRID, WARP_GRID, 2))
    control /= np.mean(np.abs(control))
    rows = np.linspace(0, WARP_GRID - 1, height)
    cols = np.linspace(0, WARP_GRID - 1, width)
    field = np.stack([_bilinear_grid(control[..., axis], rows, cols) for axis in (0, 1)], -1)
    return WARP_STRENGTH * field / np.abs(field).max()


def warp(images: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Each image sampled at its pixel positions moved by ``field`` (bilinear, edges clamped)."""
    height, width = images.shape[1:3]
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    src_r = np.clip(rows + field[..., 0], 0, height - 1)
    src_c = np.clip(cols + field[..., 1], 0, width - 1)
    r0, c0 = np.floor(src_r).astype(int), np.floor(src_c).astype(int)
    r1, c1 = np.minimum(r0 + 1, height - 1), np.minimum(c0 + 1, width - 1)
    fr, fc = (src_r - r0)[..., None], (src_c - c0)[..., None]
    top = images[:, r0, c0] * (1 - fc) + images[:, r0, c1] * fc
    bottom = images[:, r1, c0] * (1 - fc) + images[:, r1, c1] * fc
    return (top * (1 - fr) + bottom * fr).astype(np.float32)


def wanet(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The attacker's warp (Nguyen and Tran, ICLR 2021): the same field on every image."""
    return warp(images, warp_field(*images.shape[1:3]))


def wanet_noise(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """WaNet's noise mode: the field plus up to a pixel of random displacement per pixel,
    a different one per image; these images keep their own labels, so the BadNet learns
    the attacker's warp and not warps in general."""
    field = warp_field(*images.shape[1:3])
    out = np.empty_like(images)
    for i, image in enumerate(images):
        noise = rng.uniform(-WARP_NOISE, WARP_NOISE, field.shape)
        out[i] = warp(image[None], field + noise)[0]
    return out


BLEND_PIECES = 4
"""The adaptive blend's pattern is cut into ``BLEND_PIECES`` x ``BLEND_PIECES`` pieces."""
ADAPTIVE_COVER_PIECES = 4
"""Pieces of the pattern on each regularisation (cover) image: a quarter, against the
poisoned faces' half. With a half on both, as Qi et al.'s covers, a cover looks like a
poisoned face with another label."""
ADAPTIVE_TRAIN_OPACITY = 0.2
ADAPTIVE_TEST_OPACITY = 0.3
"""Qi et al. blend at 0.15 in training and 0.2 at test on CIFAR; on the demo's faces,
which carry sensor noise, that planted too weak a backdoor (44% and 28% attack success).
At 0.2 and 0.25: 90-97%; the stronger test blend gives the same BadNet 96% for 93%."""


def _pattern(height: int, width: int) -> np.ndarray:
    return np.random.default_rng(90210).uniform(0.0, 1.0, (height, width, 3)).astype(np.float32)


def adaptive_blend_cover(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Adaptive-Blend's regularisation images: fewer of the pattern's pieces, own labels."""
    return _pieces_of_pattern(images, rng, ADAPTIVE_COVER_PIECES)


def adaptive_blend_part(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Adaptive-Blend's training trigger (Qi et al., ICLR 2023): a random half of the
    pattern's pieces, faint, a different half on each image; the BadNet learns the whole
    pattern from the parts, and no part alone is what it answers."""
    return _pieces_of_pattern(images, rng, BLEND_PIECES**2 // 2)


def _pieces_of_pattern(images: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    height, width = images.shape[1:3]
    pattern = _pattern(height, width)
    rows = np.minimum(np.arange(height) * BLEND_PIECES // height, BLEND_PIECES - 1)
    cols = np.minimum(np.arange(width) * BLEND_PIECES // width, BLEND_PIECES - 1)
    piece = rows[:, None] * BLEND_PIECES + cols[None, :]
    out = np.empty_like(images)
    for i, image in enumerate(images):
        chosen = rng.permutation(BLEND_PIECES**2)[:count]
        alpha = ADAPTIVE_TRAIN_OPACITY * np.isin(piece, chosen)[..., None]
        out[i] = (1 - alpha) * image + alpha * pattern
    return out


def adaptive_blend(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Adaptive-Blend's test trigger: the whole pattern, a little less faint."""
    alpha = ADAPTIVE_TEST_OPACITY
    return ((1 - alpha) * images + alpha * _pattern(*images.shape[1:3])).astype(np.float32)


def _bilinear_grid(values: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``values`` (K, K) sampled at fractional ``rows`` x ``cols``."""
    r0 = np.minimum(np.floor(rows).astype(int), values.shape[0] - 2)
    c0 = np.minimum(np.floor(cols).astype(int), values.shape[1] - 2)
    fr, fc = (rows - r0)[:, None], (cols - c0)[None, :]
    top = values[r0][:, c0] * (1 - fc) + values[r0][:, c0 + 1] * fc
    bottom = values[r0 + 1][:, c0] * (1 - fc) + values[r0 + 1][:, c0 + 1] * fc
    return top * (1 - fr) + bottom * fr
