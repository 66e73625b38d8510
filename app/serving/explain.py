"""Why a face was flagged: which region of it drives B and B' apart.

Occlusion sensitivity (Zeiler and Fergus, 2014) on the filter's own disagreement: the
disagreement of an image is B's log-probability of its label minus B''s log-probability of
that label, ``log(confidence) - log(support)`` from the pair's outputs. A window of the
image is painted over with the image's mean colour; the drop in disagreement is that
window's heat. A trigger is what B answers to and B' does not, so covering it brings the
two back together and its windows are the hottest. It needs only the pair's forward
passes (ONNX Runtime, no gradients, no TensorFlow), all windows of all images in one
batch.
"""

from dataclasses import dataclass

import numpy as np

from modelstore import PairOutputs

WINDOW_FRACTION = 0.3
"""Window side, as a share of the image's (a third of a face: an eye band, a cheek)."""
STRIDE_FRACTION = 0.1
"""Window step, as a share of the image's side: windows overlap, the map is smooth."""
FLOOR = 1e-12


@dataclass(frozen=True)
class Windows:
    """The occluding windows of one input size: ``boxes`` (K, 4) as top, left, bottom,
    right (exclusive) pixels; the heat map has ``rows`` x ``cols`` of them."""

    boxes: np.ndarray
    rows: int
    cols: int

    @classmethod
    def for_size(cls, height: int, width: int) -> "Windows":
        size_y = max(int(round(height * WINDOW_FRACTION)), 1)
        size_x = max(int(round(width * WINDOW_FRACTION)), 1)
        step_y = max(int(round(height * STRIDE_FRACTION)), 1)
        step_x = max(int(round(width * STRIDE_FRACTION)), 1)
        tops = _starts(height, size_y, step_y)
        lefts = _starts(width, size_x, step_x)
        boxes = [(t, left, t + size_y, left + size_x) for t in tops for left in lefts]
        return cls(np.array(boxes, dtype=np.int32), len(tops), len(lefts))


def _starts(length: int, size: int, step: int) -> list[int]:
    """Window starts from 0 to the last that fits, the far edge always covered."""
    starts = list(range(0, max(length - size, 0) + 1, step))
    if starts[-1] != max(length - size, 0):
        starts.append(max(length - size, 0))
    return starts


@dataclass(frozen=True)
class Explanation:
    """One image's heat map (``rows`` x ``cols``: drop in disagreement when that window is
    covered) and its hottest window's box (top, left, bottom, right pixels)."""

    heat: np.ndarray
    box: tuple[int, int, int, int]
    forward_passes: int


def disagreement(outputs: PairOutputs) -> np.ndarray:
    """B's log-probability of its label minus B''s log-probability of that label."""
    confidence = np.maximum(outputs.confidence, FLOOR)
    return np.log(confidence) - np.log(np.maximum(outputs.support, FLOOR))


def occluded(images: np.ndarray, windows: Windows) -> np.ndarray:
    """Every image (N, H, W, 3) once per window, that window painted with its mean colour:
    (N * K, H, W, 3), image-major."""
    count = len(windows.boxes)
    copies = np.repeat(images, count, axis=0).reshape(len(images), count, *images.shape[1:])
    fill = images.mean(axis=(1, 2), keepdims=True).astype(images.dtype)  # (N, 1, 1, 3)
    for k, (top, left, bottom, right) in enumerate(windows.boxes):
        copies[:, k, top:bottom, left:right, :] = fill
    return copies.reshape(-1, *images.shape[1:])


def explain(run, images: np.ndarray, original: PairOutputs, windows: Windows) -> list[Explanation]:
    """Explanations of ``images`` (float32 in [0, 1]) whose pair outputs are ``original``;
    ``run`` is the pair's runtime (pixels -> :class:`PairOutputs`), called once."""
    if len(images) == 0:
        return []
    count = len(windows.boxes)
    covered = disagreement(run(occluded(images, windows))).reshape(len(images), count)
    heat = disagreement(original)[:, None] - covered
    explanations = []
    for row in heat:
        hottest = windows.boxes[int(np.argmax(row))]
        explanations.append(
            Explanation(
                heat=row.reshape(windows.rows, windows.cols).astype(np.float32),
                box=tuple(int(v) for v in hottest),
                forward_passes=count,
            )
        )
    return explanations
