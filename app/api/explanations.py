"""``explain``: the heat maps ``/predict`` and ``/v2`` add to their answers when asked."""

import numpy as np
from fastapi.concurrency import run_in_threadpool

from app.api.errors import ServiceError
from app.serving.explain import Explanation
from app.serving.pair import Classified, ModelPair


async def explain_chosen(
    pair: ModelPair, rgb: np.ndarray, result: Classified, chosen: np.ndarray | None
) -> dict[int, Explanation]:
    """Explanations of the ``chosen`` images (:func:`explain_choice`), by image index,
    off the event loop (each costs a batch of the pair's windows)."""
    if chosen is None or not chosen.any():
        return {}
    return await run_in_threadpool(pair.explain, rgb, result, chosen)


def explain_choice(asked: object, result: Classified) -> np.ndarray | None:
    """Which images ``explain`` asks for (None: explanations are not asked for); 400 for
    a value it does not take."""
    value = str(asked if asked is not None else "false").lower()
    if value in ("false", "0", "no"):
        return None
    if value in ("true", "1", "yes", "flagged"):
        return result.flagged
    if value == "all":
        return np.ones(len(result), dtype=bool)
    raise ServiceError(400, f"explain must be true, all or false, not {asked!r}")


def as_json(explanation: Explanation) -> dict:
    return {
        "heat": np.round(explanation.heat, 4).tolist(),
        "box": list(explanation.box),
        "forward_passes": explanation.forward_passes,
    }


def as_tensors(
    explained: dict[int, Explanation], count: int, rows: int, cols: int
) -> dict[str, tuple[str, np.ndarray]]:
    """``/v2`` outputs: heat maps (N, rows, cols) and boxes (N, 4); an image not explained
    has a box of -1s and a heat map of zeros (JSON has no NaN)."""
    heat = np.zeros((count, rows, cols), dtype=np.float32)
    boxes = np.full((count, 4), -1, dtype=np.int32)
    for index, explanation in explained.items():
        heat[index], boxes[index] = explanation.heat, explanation.box
    return {"explanation_heat": ("FP32", heat), "explanation_box": ("INT32", boxes)}
