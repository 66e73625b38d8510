"""``python -m bench.model_limit FOLDER DURATION {default,serving}``: images/s of the fused
two-model graph alone (no HTTP), printed as one JSON object.

TensorFlow's thread pools are fixed once it starts, so each setting runs in its own process:

* ``default``: the runtimes' own pools, one call at a time (TensorFlow's eager function
  runs B and B' in parallel, each op on every core; ONNX Runtime on every core).
* ``serving``: the service's settings, through ``ModelPair.classify`` itself: one thread
  per call (the frozen graph in chunks of 32, see ``app.serving.tensorflow_backend``), and on large
  batches as many callers at once as the service has batcher threads (``BATCH_THREADS``,
  one per core), one core each. The fastest here on large batches.
"""

import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import repair  # noqa: F401 - Keras 2 environment before TensorFlow loads
from app.core.config import available_cores, load_settings

LARGE_BATCH = 256


def measure(folder: Path, duration_s: float, mode: str) -> dict:
    """Images/s and ms per call of each runtime on ``LARGE_BATCH`` images and on one."""
    from app.serving import tensorflow_backend as tfb
    from app.serving.onnx_backend import OnnxRuntime
    from app.serving.pair import LoadOptions, load_pair

    settings = load_settings()
    if mode == "serving":
        tfb.configure_threads(settings.infer_threads)
        threads = settings.infer_threads
    else:
        threads = available_cores()
    started = time.perf_counter()
    pair = load_pair(folder, options=LoadOptions(threads=threads))
    out: dict = {"load_pair_s": round(time.perf_counter() - started, 3)}
    runners: dict[str, Callable[[np.ndarray], object]] = {}
    if mode == "serving":
        runners["served"] = pair.classify
    else:
        bad, repaired = tfb.load_models(folder / "bad.h5", folder / "repaired.h5")
        fused = tfb.fuse(bad, repaired)
        runners["tensorflow"] = tfb.EagerRuntime(fused).run
        runners["onnxruntime"] = OnnxRuntime(tfb.to_onnx(fused), threads).run
    pixels = np.random.default_rng(0).uniform(0, 1, (LARGE_BATCH, *pair.input_shape))
    pixels = pixels.astype(np.float32)
    callers = settings.batch_threads if mode == "serving" else 1
    for name, run in runners.items():
        for batch, at_once in ((pixels, callers), (pixels[:1], 1)):
            out[f"{name}_{mode}_b{len(batch)}"] = _rate(run, batch, duration_s / 4, at_once)
    return out


def _rate(
    run: Callable[[np.ndarray], object], batch: np.ndarray, seconds: float, callers: int = 1
) -> dict:
    """Images/s of ``callers`` threads each calling ``run(batch)`` for ``seconds``, and
    ms per call (per caller)."""

    def calls() -> int:
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            run(batch)
            count += 1
        return count

    run(batch)
    started = time.perf_counter()
    with ThreadPoolExecutor(callers) as pool:
        counts = list(pool.map(lambda _: calls(), range(callers)))
    elapsed = time.perf_counter() - started
    return {
        "images_per_s": sum(counts) * len(batch) / elapsed,
        "ms_per_call": 1000 * elapsed * callers / sum(counts),
        "callers": callers,
    }


if __name__ == "__main__":
    folder, duration, mode = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    print(json.dumps(measure(folder, duration, mode)))
