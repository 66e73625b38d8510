"""The fused pair graph (B and B' on one batch) and its ONNX export, checked against Keras.

The service serves either this graph frozen in TensorFlow or its ONNX export, which needs
no TensorFlow at all; both give, per image, :data:`OUTPUTS`, and the filter rule is applied
on top of them.
"""

from pathlib import Path

import numpy as np

import modelstore
from repair.errors import RepairError
from repair.inference import predict_scores
from repair.keras_env import keras, tf

OUTPUTS = modelstore.PAIR_OUTPUTS

OPSET = 17


def fuse(bad: keras.Model, repaired: keras.Model, temperature: float = 1.0):  # noqa: ANN201
    """One ``tf.function`` running both nets on the same batch, returning :data:`OUTPUTS`;
    the overlap is of both outputs softened at ``temperature``
    (:func:`repair.filter_rule.overlap`)."""
    input_shape = tuple(int(d) for d in bad.input_shape[1:])

    def soften(scores: tf.Tensor) -> tf.Tensor:
        if temperature == 1.0:
            return scores
        return tf.nn.softmax(tf.math.log(tf.maximum(scores, 1e-30)) / temperature, axis=1)

    @tf.function(input_signature=[tf.TensorSpec((None, *input_shape), tf.float32, name="images")])
    def fused(images: tf.Tensor) -> dict[str, tf.Tensor]:
        bad_scores = bad(images, training=False)
        repaired_scores = repaired(images, training=False)
        product = tf.maximum(soften(bad_scores) * soften(repaired_scores), 0.0)
        return {
            "bad_label": tf.argmax(bad_scores, axis=1, output_type=tf.int32),
            "repaired_label": tf.argmax(repaired_scores, axis=1, output_type=tf.int32),
            "confidence": tf.reduce_max(bad_scores, axis=1),
            "overlap": tf.reduce_sum(tf.sqrt(product), axis=1),
        }

    fused(tf.zeros((1, *input_shape), tf.float32))  # trace now, not on first use
    return fused


def to_onnx(fused) -> bytes:  # noqa: ANN001 - a tf.function from :func:`fuse`
    """The fused graph as an ONNX model (tf2onnx), with an ``images`` input."""
    import tf2onnx

    spec = fused.input_signature
    proto, _ = tf2onnx.convert.from_function(fused, input_signature=spec, opset=OPSET)
    return proto.SerializeToString()


def export_pair_onnx(
    bad: keras.Model,
    repaired: keras.Model,
    temperature: float,
    path: Path,
    checks: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> dict[str, int]:
    """Write the fused graph of (B, B') to ``path`` as ONNX, after checking that ONNX Runtime
    gives Keras' top labels for both nets on every image of ``checks``: name -> (images,
    B's labels, B''s labels), as Keras gave them.

    Raises :class:`RepairError` naming the images that differ; returns the images checked
    per set.
    """
    import onnxruntime

    model = to_onnx(fuse(bad, repaired, temperature))
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    differing: list[str] = []
    for name, (images, bad_labels, repaired_labels) in checks.items():
        for start in range(0, len(images), 512):
            got = dict(
                zip(names, session.run(None, {"images": images[start : start + 512]}), strict=True)
            )
            for role, expected in (("bad_label", bad_labels), ("repaired_label", repaired_labels)):
                wrong = np.flatnonzero(got[role] != expected[start : start + 512])
                differing += [f"{name}[{start + i}] ({role})" for i in wrong]
    if differing:
        shown = ", ".join(differing[:10]) + (" ..." if len(differing) > 10 else "")
        raise RepairError(
            f"the ONNX export answers differently from Keras on {len(differing)} image(s): {shown}"
        )
    path.write_bytes(model)
    return {name: len(images) for name, (images, _, _) in checks.items()}


def keras_labels(bad: keras.Model, repaired: keras.Model, images: np.ndarray) -> tuple:
    """B's and B''s top labels on ``images``, through Keras."""
    return predict_scores(bad, images).argmax(axis=1), predict_scores(repaired, images).argmax(
        axis=1
    )
