"""The TensorFlow backend: B and B' fused into one graph, its weights frozen into constants,
run by a session in the calling thread.

A call of the eager ``tf.function`` hands every op to TensorFlow's inter-op pool; the
frozen graph's session (``inter_op_parallelism_threads=-1``) runs them in the calling
thread, so each batcher thread keeps to one core and two threads use two cores.
``python -m bench`` measures both (``model_limit``).
"""

import logging

import numpy as np

import repair
from app.serving.runtime import OUTPUTS, PairOutputs
from repair.keras_env import keras, tf

log = logging.getLogger(__name__)

CHUNK = 32
"""Most images per graph call: larger batches run as equal chunks, one after another
(faster per image on one core than one large call)."""


def configure_threads(threads: int) -> bool:
    """Ops on ``threads`` threads (intra-op), and eager calls one op at a time (inter-op 1,
    else TensorFlow runs B and B' in parallel, taking the event loop's core). Returns False,
    pools unchanged, once TensorFlow has started (they are fixed from then on)."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError as exc:
        log.warning("TensorFlow thread pools already set, left as they are: %s", exc)
        return False
    return True


def load_models(bad_path, repaired_path) -> tuple[keras.Model, keras.Model]:
    """B and B' from their files (full Keras models or CSAW weight files); raises
    ``repair.RepairError`` for a file that is not one."""
    return repair.load_model_file(bad_path), repair.load_model_file(repaired_path)


def fuse(bad: keras.Model, repaired: keras.Model, temperature: float = 1.0):
    """B and B' on one batch, giving :data:`app.serving.runtime.OUTPUTS`: the repair's own
    definition of the pair graph (the one it exports to ONNX)."""
    return repair.fuse(bad, repaired, temperature)


class EagerRuntime:
    """The fused ``tf.function`` called directly: the reference every backend is checked on."""

    name = "tensorflow-eager"

    def __init__(self, fused) -> None:  # a tf.function from :func:`fuse`
        self.fused = fused

    def run(self, pixels: np.ndarray) -> PairOutputs:
        outputs = self.fused(tf.constant(pixels))
        return PairOutputs.from_named({name: value.numpy() for name, value in outputs.items()})

    def close(self) -> None:
        pass


class FrozenGraphRuntime:
    """The fused graph frozen and run by a session in the calling thread, in chunks."""

    name = "tensorflow"

    def __init__(self, fused, threads: int = 1) -> None:
        from tensorflow.python.framework.convert_to_constants import (
            convert_variables_to_constants_v2,  # TF's own freezing (as tf2onnx uses it)
        )

        concrete = fused.get_concrete_function()
        frozen = convert_variables_to_constants_v2(concrete)
        # Outputs come flattened in the order of the structured output's sorted keys.
        by_name = dict(zip(sorted(concrete.structured_outputs), frozen.outputs, strict=True))
        self._fetches = [by_name[name].name for name in OUTPUTS]
        self._input = frozen.inputs[0].name
        config = tf.compat.v1.ConfigProto(
            intra_op_parallelism_threads=threads,
            inter_op_parallelism_threads=-1,  # every op in the calling thread
        )
        self._session = tf.compat.v1.Session(graph=frozen.graph, config=config)

    def run(self, pixels: np.ndarray) -> PairOutputs:
        if len(pixels) <= CHUNK:
            return PairOutputs(*self._session.run(self._fetches, {self._input: pixels}))
        chunks = np.array_split(pixels, -(-len(pixels) // CHUNK))
        return PairOutputs.concat([self.run(chunk) for chunk in chunks])

    def close(self) -> None:
        self._session.close()


def to_onnx(fused) -> bytes:
    """The fused graph as an ONNX model, for folders published without one."""
    return repair.to_onnx(fused)
