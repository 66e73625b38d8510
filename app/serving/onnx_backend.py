"""The ONNX Runtime backend: the fused two-net graph in an ONNX Runtime session."""

import numpy as np

from app.serving.runtime import OUTPUTS, PairOutputs


class OnnxRuntime:
    """An ONNX Runtime session of a fused graph with an ``images`` input and :data:`OUTPUTS`."""

    name = "onnxruntime"

    def __init__(self, model: bytes, threads: int = 1) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # 1: runs in the calling thread, no pool
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            model, options, providers=["CPUExecutionProvider"]
        )
        self._names = [output.name for output in self._session.get_outputs()]
        missing = set(OUTPUTS) - set(self._names)
        if missing:
            raise ValueError(f"the ONNX graph lacks outputs {sorted(missing)}")

    def run(self, pixels: np.ndarray) -> PairOutputs:
        values = dict(zip(self._names, self._session.run(None, {"images": pixels}), strict=True))
        return PairOutputs.from_named(values)

    def close(self) -> None:
        pass  # the session is freed with the object
