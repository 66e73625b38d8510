"""A peer for the benchmark: the same model folder served by NVIDIA PyTriton (Triton Inference
Server bundled in its wheel, with Triton's dynamic batcher), answering like the service's
``/v2/models/{name}/infer``: the folder's ``pair.onnx`` in ONNX Runtime and the manifest's
filter rule.

Runs in a virtual environment of its own (``bench/peers.py`` makes it: PyTriton needs
numpy<2), so it imports nothing from this project::

    python bench/peer_pytriton.py --folder models/demo --port 8020
"""

import argparse
from pathlib import Path

import numpy as np
import onnxruntime
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig

from modelstore import ModelFolder, read_manifest


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--instances", type=int, default=2, help="model instances (threads)")
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--queue-delay-us", type=int, default=2000)
    args = parser.parse_args()
    folder = args.folder.resolve()
    manifest = read_manifest(ModelFolder(folder).manifest)
    rule = manifest.filter
    poisoned = manifest.poisoned_label
    height, width, channels = manifest.input_shape

    def instance():  # one session per instance, one thread each, as the service
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(ModelFolder(folder).pair_onnx), options, providers=["CPUExecutionProvider"]
        )
        names = [o.name for o in session.get_outputs()]

        @batch
        def infer(images: np.ndarray) -> dict:
            pixels = images.astype(np.float32) / np.float32(255.0)
            out = dict(zip(names, session.run(None, {"images": pixels}), strict=True))
            if rule.kind == "calibrated":
                flagged = out["overlap"] < rule.threshold
                if rule.support_threshold is not None:
                    flagged |= out["support"] < rule.support_threshold
            else:
                flagged = out["bad_label"] != out["repaired_label"]
            label = np.where(flagged, poisoned, out["bad_label"])
            return {
                "label": label.astype(np.int32)[:, None],
                "flagged": flagged[:, None],
                "bad_label": out["bad_label"].astype(np.int32)[:, None],
                "repaired_label": out["repaired_label"].astype(np.int32)[:, None],
                "confidence": out["confidence"].astype(np.float32)[:, None],
                "overlap": out["overlap"].astype(np.float32)[:, None],
                "support": out["support"].astype(np.float32)[:, None],
            }

        return infer

    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=args.port,
        grpc_address="127.0.0.1",
        grpc_port=args.port + 1,
        metrics_port=args.port + 2,
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name=manifest.name,
            infer_func=[instance() for _ in range(args.instances)],
            inputs=[Tensor(name="images", dtype=np.uint8, shape=(height, width, channels))],
            outputs=[
                Tensor(name="label", dtype=np.int32, shape=(1,)),
                Tensor(name="flagged", dtype=np.bool_, shape=(1,)),
                Tensor(name="bad_label", dtype=np.int32, shape=(1,)),
                Tensor(name="repaired_label", dtype=np.int32, shape=(1,)),
                Tensor(name="confidence", dtype=np.float32, shape=(1,)),
                Tensor(name="overlap", dtype=np.float32, shape=(1,)),
                Tensor(name="support", dtype=np.float32, shape=(1,)),
            ],
            config=ModelConfig(
                max_batch_size=args.max_batch,
                batcher=DynamicBatcher(max_queue_delay_microseconds=args.queue_delay_us),
            ),
            strict=True,
        )
        triton.serve()


if __name__ == "__main__":
    main()
