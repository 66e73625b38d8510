"""The fused pair graph (B and B' on one batch), its ONNX export checked against Keras, and
ONNX graphs run in ONNX Runtime for the repair's evaluation.

The service serves either this graph frozen in TensorFlow or its ONNX export, which needs
no TensorFlow at all; both give, per image, :data:`OUTPUTS`, and the filter rule is applied
on top of them.
"""

import numpy as np

import modelstore
from repair.errors import RepairError
from repair.inference import predict_scores
from repair.keras_env import keras, tf

OUTPUTS = modelstore.PAIR_OUTPUTS

OPSET = 17

TIE_TOLERANCE = 1e-4
"""Probability within which two labels of one net count as tied when the export is checked
against Keras (ONNX Runtime's top probability differed from TensorFlow's by at most 3.2e-6
on a DeepID, a ResNet and an EfficientNet pair measured)."""


def fuse(bad: keras.Model, repaired: keras.Model, temperature: float = 1.0):
    """One ``tf.function`` running both nets on the same batch, returning :data:`OUTPUTS`;
    the overlap is of both outputs softened at ``temperature`` (:mod:`repair.filter_rule`
    defines it and the support)."""
    input_shape = tuple(int(d) for d in bad.input_shape[1:])
    num_classes = int(bad.output_shape[-1])

    def soften(scores: tf.Tensor) -> tf.Tensor:
        if temperature == 1.0:
            return scores
        return tf.nn.softmax(tf.math.log(tf.maximum(scores, 1e-30)) / temperature, axis=1)

    @tf.function(
        input_signature=[tf.TensorSpec((None, *input_shape), tf.float32, name="images")],
        autograph=False,  # straight-line code: nothing for autograph to convert
    )
    def fused(images: tf.Tensor) -> dict[str, tf.Tensor]:
        bad_scores = bad(images, training=False)
        repaired_scores = repaired(images, training=False)
        product = tf.maximum(soften(bad_scores) * soften(repaired_scores), 0.0)
        bad_label = tf.argmax(bad_scores, axis=1, output_type=tf.int32)
        return {
            "bad_label": bad_label,
            "repaired_label": tf.argmax(repaired_scores, axis=1, output_type=tf.int32),
            "confidence": tf.reduce_max(bad_scores, axis=1),
            "overlap": tf.reduce_sum(tf.sqrt(product), axis=1),
            "support": tf.reduce_sum(
                repaired_scores * tf.one_hot(bad_label, num_classes, dtype=repaired_scores.dtype),
                axis=1,
            ),
        }

    fused(tf.zeros((1, *input_shape), tf.float32))  # trace now, not on first use
    return fused


def to_onnx(fused) -> bytes:  # a tf.function from :func:`fuse`
    """The fused graph as an ONNX model (tf2onnx), with an ``images`` input."""
    import tf2onnx

    spec = fused.input_signature
    proto, _ = tf2onnx.convert.from_function(fused, input_signature=spec, opset=OPSET)
    _embed_captured_constants(proto, fused.get_concrete_function())
    _erfc_as_erf(proto)
    return proto.SerializeToString()


def _embed_captured_constants(proto: object, concrete: object) -> None:  # onnx, tf protos
    """Make the tensors the traced function captured from outside part of the ONNX graph.

    A layer may compute a constant eagerly, outside any graph (Keras' ``Normalization``
    keeps its mean and variance so, as keras.applications' EfficientNets do): a
    ``tf.function`` captures it as an input, and tf2onnx leaves it a graph input (folded
    into the nodes, or not), so ONNX Runtime would ask for it beside the images. An input no
    node reads is dropped; one a node reads gets its value. Variables are frozen by tf2onnx
    already."""
    from onnx import numpy_helper

    values = {
        internal.name: external.numpy()
        for external, internal in concrete.graph.captures
        if external.dtype != tf.resource
    }
    read = {name for node in proto.graph.node for name in node.input}
    for graph_input in list(proto.graph.input):
        if graph_input.name not in values:
            continue
        if graph_input.name in read:
            proto.graph.initializer.append(
                numpy_helper.from_array(values[graph_input.name], graph_input.name)
            )
        proto.graph.input.remove(graph_input)


def _erfc_as_erf(proto: object) -> None:  # an onnx ModelProto
    """Rewrite each ``Erfc(x)`` node as ``1 - Erf(x)``.

    tf2onnx writes TensorFlow's erfc as an ``Erfc`` node, which is not an ONNX operator, and
    TensorFlow's exact GELU (``activation="gelu"``) is built on erfc: ONNX Runtime would
    refuse the graph. ``Erf`` is standard."""
    from onnx import helper, numpy_helper

    nodes = list(proto.graph.node)
    if not any(node.op_type == "Erfc" for node in nodes):
        return
    one = "erfc_as_erf_one"
    proto.graph.initializer.append(numpy_helper.from_array(np.ones((), np.float32), one))
    del proto.graph.node[:]
    for node in nodes:
        if node.op_type != "Erfc":
            proto.graph.node.append(node)
            continue
        erf = f"{node.name}_erf"
        proto.graph.node.extend(
            [
                helper.make_node("Erf", [node.input[0]], [erf], name=erf),
                helper.make_node("Sub", [one, erf], [node.output[0]], name=node.name),
            ]
        )


class OnnxGraph:
    """An ONNX model in ONNX Runtime, run in batches: the repair evaluates the exported pair
    through it, so the manifest's figures are those of the graph the service serves (and
    ONNX Runtime runs these nets about twice as fast as Keras on a CPU)."""

    BATCH = 512  # larger batches ran slower in ONNX Runtime on 2 cores

    def __init__(self, model: bytes) -> None:
        import onnxruntime

        self.model = model
        self._session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
        self._names = [output.name for output in self._session.get_outputs()]

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Every output for every image of ``images``."""
        parts = [
            self._session.run(None, {"images": images[start : start + self.BATCH]})
            for start in range(0, max(len(images), 1), self.BATCH)
        ]
        return {
            name: np.concatenate([part[i] for part in parts]) for i, name in enumerate(self._names)
        }


def pair_graph(bad: keras.Model, repaired: keras.Model, temperature: float) -> OnnxGraph:
    """The fused graph of (B, B') (:func:`fuse`) exported to ONNX and loaded."""
    return OnnxGraph(to_onnx(fuse(bad, repaired, temperature)))


def label_graph(model: keras.Model) -> OnnxGraph:
    """One net's top label (output ``label``) as an ONNX graph."""
    input_shape = tuple(int(d) for d in model.input_shape[1:])

    @tf.function(
        input_signature=[tf.TensorSpec((None, *input_shape), tf.float32, name="images")],
        autograph=False,  # straight-line code: nothing for autograph to convert
    )
    def labels(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {"label": tf.argmax(model(images, training=False), axis=1, output_type=tf.int32)}

    return OnnxGraph(to_onnx(labels))


def check_against_keras(
    bad: keras.Model,
    repaired: keras.Model,
    checks: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> dict[str, int]:
    """Check that the exported pair gave Keras' top labels for both nets: ``checks`` maps a
    name to (images, B's labels, B''s labels) as the export gave them. Returns the images
    checked per set.

    A label that differs counts only where Keras gives it less probability than its own top
    label by more than :data:`TIE_TOLERANCE`: two labels within that are a tie, which float
    sums in another order can break either way.

    Raises :class:`RepairError` naming the images that differ.
    """
    differing: list[str] = []
    for name, (images, bad_labels, repaired_labels) in checks.items():
        for role, net, labels in (
            ("bad_label", bad, bad_labels),
            ("repaired_label", repaired, repaired_labels),
        ):
            scores = predict_scores(net, images)
            rows = np.arange(len(labels))
            margin = scores[rows, scores.argmax(axis=1)] - scores[rows, labels]
            wrong = np.flatnonzero(margin > TIE_TOLERANCE)
            differing += [f"{name}[{i}] ({role})" for i in wrong]
    if differing:
        shown = ", ".join(differing[:10]) + (" ..." if len(differing) > 10 else "")
        raise RepairError(
            f"the ONNX export answers differently from Keras on {len(differing)} image(s): {shown}"
        )
    return {name: len(images) for name, (images, _, _) in checks.items()}
