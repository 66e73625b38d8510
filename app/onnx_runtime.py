"""The fused two-model graph in ONNX Runtime (converted with tf2onnx), checked against
TensorFlow before it is used."""

import numpy as np

from app.pairs import OUTPUTS

PROBE_IMAGES = 64


class OnnxUnavailable(Exception):
    """ONNX Runtime cannot serve this pair (not installed, conversion failed, or answers
    that differ from TensorFlow's)."""


class OnnxPair:
    """An ONNX Runtime session of the fused graph."""

    def __init__(self, model_bytes: bytes, threads: int = 1) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 1: runs in the calling thread, no pool
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            model_bytes, options, providers=["CPUExecutionProvider"]
        )
        self._names = [output.name for output in self._session.get_outputs()]

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, ...]:
        """The four outputs for ``batch``, in :data:`OUTPUTS` order."""
        values = dict(zip(self._names, self._session.run(None, {"images": batch}), strict=True))
        return tuple(values[name] for name in OUTPUTS)


def convert_checked(fused, input_shape: tuple[int, ...], threads: int = 1) -> OnnxPair:  # noqa: ANN001
    """Convert the fused ``tf.function`` and check labels equal TensorFlow's on probe images."""
    try:
        import tensorflow as tf
        import tf2onnx

        spec = (tf.TensorSpec((None, *input_shape), tf.float32, name="images"),)
        proto, _ = tf2onnx.convert.from_function(fused, input_signature=spec, opset=17)
        pair = OnnxPair(proto.SerializeToString(), threads)
    except ImportError as exc:
        raise OnnxUnavailable(f"not installed ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - any conversion failure falls back to TF
        raise OnnxUnavailable(f"conversion failed: {type(exc).__name__}: {exc}") from exc
    probe = np.random.default_rng(0).uniform(0, 1, (PROBE_IMAGES, *input_shape))
    probe = probe.astype(np.float32)
    expected = fused(tf.constant(probe))
    got = pair.run(probe)
    for name, value in zip(OUTPUTS, got, strict=True):
        reference = expected[name].numpy()
        same = (
            np.allclose(value, reference, atol=1e-4)
            if name == "confidence"
            else np.array_equal(value, reference)
        )
        if not same:
            raise OnnxUnavailable(f"ONNX Runtime's {name} differs from TensorFlow's on probes")
    return pair
