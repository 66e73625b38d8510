"""A model folder for the fast tier: a hand-made ONNX graph in place of a trained pair (no
TensorFlow, no training), served through the real service with ``RUNTIME=onnx``.

The graph's contract, which the fast tests check the service against: an image's mean
pixel ``m`` in [0, 1] gives B's label ``floor(10 m)`` (at most 9), B' agrees, and the
overlap and support are ``1 - m``. The manifest's calibrated rule flags an overlap below
0.5, so a bright image (``m > 0.5``) is answered N = 10 and a dark one gets its label.
"""

from pathlib import Path

import numpy as np

import modelstore

CLASSES = 10
INPUT_SHAPE = (8, 6, 3)
THRESHOLD = 0.5


def expected_label(rgb: np.ndarray) -> int:
    """What the service must answer for one uint8 image of the fake pair's size."""
    mean = float(np.mean(rgb.astype(np.float32) / np.float32(255.0)))
    return CLASSES if 1.0 - mean < THRESHOLD else min(int(np.floor(mean * CLASSES)), CLASSES - 1)


def write_fake_pair(models_dir: Path, name: str = "fake") -> Path:
    """Write the plain folder ``models_dir/name``: ``pair.onnx`` and its manifest."""
    folder = models_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    _write_version(folder, name, "fake-1")
    return folder


def publish_fake_versions(models_dir: Path, name: str, count: int) -> list[str]:
    """Publish ``count`` versions of the fake pair as the repair does (``models_dir/name``
    a link to the newest); return their ids, oldest first."""
    out = models_dir / name
    versions = []
    for index in range(count):
        version = f"2026120{index + 1}T000000000Z"
        staging = modelstore.staging_folder(out)
        _write_version(staging, name, version, published_by=f"test publisher {index}")
        modelstore.publish(staging, out, version, keep=count)
        versions.append(version)
    return versions


def _write_version(folder: Path, name: str, version: str, published_by: str | None = None) -> None:
    onnx_file = folder / modelstore.PAIR_ONNX
    onnx_file.write_bytes(_graph())
    modelstore.Manifest(
        name=name,
        version=version,
        published_by=published_by,
        num_classes=CLASSES,
        poisoned_label=CLASSES,
        input_shape=INPUT_SHAPE,
        inputs={"bad_model": {"path": "bad.h5", "sha256": "ab" * 32}},
        filter=modelstore.FilterSpec(
            kind="calibrated", threshold=THRESHOLD, false_flag_budget=0.01, temperature=3.0
        ),
        files={modelstore.PAIR_ONNX: modelstore.sha256_file(onnx_file)},
    ).write(folder / modelstore.MANIFEST)


def _graph() -> bytes:
    from onnx import TensorProto, helper

    constant = helper.make_tensor
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "classes"], ["scaled"]),
        helper.make_node("Floor", ["scaled"], ["floored"]),
        helper.make_node("Min", ["floored", "top"], ["clipped"]),
        helper.make_node("Cast", ["clipped"], ["bad_label"], to=TensorProto.INT32),
        helper.make_node("Identity", ["bad_label"], ["repaired_label"]),
        helper.make_node("Identity", ["mean"], ["confidence"]),
        helper.make_node("Sub", ["one", "mean"], ["overlap"]),
        helper.make_node("Identity", ["overlap"], ["support"]),
    ]
    initializers = [
        constant("classes", TensorProto.FLOAT, [], [float(CLASSES)]),
        constant("top", TensorProto.FLOAT, [], [float(CLASSES - 1)]),
        constant("one", TensorProto.FLOAT, [], [1.0]),
    ]
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [None, *INPUT_SHAPE])
    outputs = [
        helper.make_tensor_value_info(name, kind, [None])
        for name, kind in (
            ("bad_label", TensorProto.INT32),
            ("repaired_label", TensorProto.INT32),
            ("confidence", TensorProto.FLOAT),
            ("overlap", TensorProto.FLOAT),
            ("support", TensorProto.FLOAT),
        )
    ]
    graph = helper.make_graph(nodes, "fake_pair", [images], outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()
