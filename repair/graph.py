"""The roles of a classifier's layers, found from its graph rather than its layer names.

* **The pruned feature map** is the deepest 4-D tensor that every path from the input to
  the output crosses: the last convolutional feature map the classifier head reads (the
  Fine-Pruning paper's "last convolutional layer"). On the CSAW DeepID net it is
  ``pool_3``, the max-pooled ``conv_3`` that both of its dense branches read; on a residual
  net, the activation after the last residual addition; on a MobileNet, the last
  pointwise convolution's activation.
* **Pruning is a mask on that tensor** (:func:`with_channel_mask`): a 1x1 depthwise
  convolution without bias whose weights are 1 for kept channels and 0 for pruned ones,
  frozen. Zeroing a convolution's kernel prunes nothing behind BatchNorm (which adds its
  shift back), nor where a residual addition carries the channel around the convolution;
  masking the tensor the head reads removes the channel from everything after it, in any
  graph. It is a built-in Keras layer, so B' loads, exports to ONNX and serves as B does.
* **The frozen early layers**: the weighted layers before the first ``frozen_fraction`` of
  the trunk's convolutions (generic edges and colours; none by default, ``conv_1`` and
  ``conv_2`` on DeepID at 0.5). **The re-initialised head**: the weighted layers after the
  feature map that are not convolutions over a map (the dense classifier, and a 1x1
  convolution on pooled features, as keras.applications' MobileNets end); its dense
  layers are made sparse.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from repair.errors import RepairInputError
from repair.keras_env import keras

CONV_CLASSES = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)
MASK_LAYER = "fine_pruning_mask"


@dataclass(frozen=True)
class LayerRoles:
    """What the repair does to each layer of a model."""

    feature_layer: str
    """The layer whose output (the head's input feature map) is pruned, channel by channel."""
    channels: int
    frozen: tuple[str, ...]
    """Kept as in B during fine-tuning."""
    reinit: tuple[str, ...]
    """Given fresh weights before fine-tuning."""
    sparse: tuple[str, ...]
    """Made sparse (tfmot magnitude pruning) during fine-tuning."""


def as_functional(model: keras.Model) -> keras.Model:
    """``model`` as a functional model: a Sequential one rebuilt as a graph of fresh layers
    (each layer used once, as the graph walk expects), any other returned as it is."""
    if not isinstance(model, keras.Sequential):
        return model
    inputs = keras.Input(batch_shape=model.input_shape)
    x = inputs
    for layer in model.layers:
        x = layer(x)
    graph = keras.Model(inputs, x, name=model.name)
    copy = keras.models.clone_model(graph)
    copy.set_weights(graph.get_weights())
    return copy


def feature_layers(model: keras.Model) -> list[str]:
    """Layers whose output, a map of more than one position, every path from the input to
    the output crosses, after at least one convolution, shallowest first: the places where
    a channel mask prunes."""
    inbound = _inbound(model)
    order = [layer.name for layer in model.layers]
    output = model.get_config()["output_layers"][0][0]
    seen_conv = False
    found = []
    for layer in model.layers:
        seen_conv = seen_conv or isinstance(layer, CONV_CLASSES)
        if not seen_conv or len(layer.inbound_nodes) != 1 or not _is_spatial(layer.output):
            continue
        if _is_cut(layer.name, inbound, order, output):
            found.append(layer.name)
    return found


def find_roles(
    model: keras.Model,
    feature_layer: str | None = None,
    frozen_fraction: float = 0.0,
    frozen: Sequence[str] | None = None,
    reinit: Sequence[str] | None = None,
    sparse: Sequence[str] | None = None,
) -> LayerRoles:
    """Each role from the graph, unless named. Raises :class:`RepairInputError` when a named
    layer cannot take its role, or the graph has no convolutional feature map to prune."""
    candidates = feature_layers(model)
    if feature_layer is None:
        if not candidates:
            raise RepairInputError(
                "the model has no convolutional feature map that every path to the output "
                "crosses; fine-pruning needs a convolutional image classifier"
            )
        feature_layer = candidates[-1]
    elif feature_layer not in candidates:
        names = [layer.name for layer in model.layers]
        problem = (
            "not a layer of the model"
            if feature_layer not in names
            else (
                "not a 4-D feature map that every path from the input to the output crosses "
                "(a residual connection or a second branch goes around it)"
            )
        )
        raise RepairInputError(
            f"layer {feature_layer!r} is {problem}; layers that can be pruned: {candidates}"
        )
    position = [layer.name for layer in model.layers].index(feature_layer)
    trunk, head = model.layers[: position + 1], model.layers[position + 1 :]
    roles = LayerRoles(
        feature_layer=feature_layer,
        channels=int(model.get_layer(feature_layer).output.shape[-1]),
        frozen=_named(model, frozen) if frozen is not None else _early(trunk, frozen_fraction),
        reinit=_named(model, reinit)
        if reinit is not None
        else tuple(layer.name for layer in head if layer.weights and not _is_spatial_conv(layer)),
        sparse=_named(model, sparse)
        if sparse is not None
        else tuple(layer.name for layer in head if _is_dense(layer)),
    )
    clash = sorted(set(roles.frozen) & {feature_layer, *roles.reinit, *roles.sparse})
    if clash:
        raise RepairInputError(f"frozen layers {clash} are pruned, re-initialised or made sparse")
    return roles


def with_channel_mask(model: keras.Model, feature_layer: str) -> keras.Model:
    """A copy of ``model`` with a channel mask (all channels on) after ``feature_layer``."""
    channels = int(model.get_layer(feature_layer).output.shape[-1])
    mask = keras.layers.DepthwiseConv2D(
        1, use_bias=False, name=_free_name(model, MASK_LAYER), trainable=False
    )
    config = model.get_config()
    for entry in config["layers"]:
        for edge in _edges(entry["inbound_nodes"]):
            if edge[0] == feature_layer:
                edge[0] = mask.name
    position = next(i for i, e in enumerate(config["layers"]) if e["name"] == feature_layer)
    config["layers"].insert(
        position + 1,
        {
            **keras.layers.serialize(mask),
            "name": mask.name,
            "inbound_nodes": [[[feature_layer, 0, 0, {}]]],
        },
    )
    masked = keras.Model.from_config(config)
    for layer in model.layers:
        masked.get_layer(layer.name).set_weights(layer.get_weights())
    masked.get_layer(mask.name).set_weights([np.ones((1, 1, channels, 1), np.float32)])
    return masked


def mask_layer(model: keras.Model) -> keras.layers.DepthwiseConv2D:
    """The channel mask :func:`with_channel_mask` added (the last one, if several)."""
    masks = [layer for layer in model.layers if layer.name.startswith(MASK_LAYER)]
    if not masks:
        raise ValueError("the model has no channel mask")
    return masks[-1]


def set_pruned(model: keras.Model, channels: Sequence[int]) -> None:
    """Switch ``channels`` of the feature map off (and every other one on)."""
    layer = mask_layer(model)
    weights = np.ones(layer.get_weights()[0].shape, np.float32)
    weights[0, 0, np.asarray(list(channels), dtype=np.int64), 0] = 0.0
    layer.set_weights([weights])


def _early(trunk: list[keras.layers.Layer], fraction: float) -> tuple[str, ...]:
    """The first ``fraction`` of the trunk's convolutions (rounded half up), the weighted
    layers between them, and the BatchNorms that normalise them."""
    convs = [i for i, layer in enumerate(trunk) if isinstance(layer, CONV_CLASSES)]
    count = int(np.floor(fraction * len(convs) + 0.5))
    if count == 0:
        return ()
    last = convs[count - 1]
    frozen = {layer.name for layer in trunk[: last + 1] if layer.weights}
    for layer in trunk[last + 1 :]:
        if isinstance(layer, keras.layers.BatchNormalization):
            source = layer.inbound_nodes[0].inbound_layers
            if getattr(source, "name", None) in frozen:
                frozen.add(layer.name)
    return tuple(layer.name for layer in trunk if layer.name in frozen)


def _is_spatial(tensor: object) -> bool:
    """A 4-D map with more than one position: a 1x1 map (a global pooling kept 4-D, as
    keras.applications' MobileNets do before their classifier) holds features, not a map."""
    shape = tensor.shape
    if len(shape) != 4:
        return False
    height, width = shape[1], shape[2]
    return height is None or width is None or height * width > 1


def _is_spatial_conv(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, CONV_CLASSES) and _is_spatial(layer.input)


def _is_dense(layer: keras.layers.Layer) -> bool:
    """A dense layer, or a convolution on a 1x1 map, which is one (MobileNet's
    ``conv_preds``, MobileNetV3's ``Logits``)."""
    return isinstance(layer, keras.layers.Dense) or (
        isinstance(layer, CONV_CLASSES) and not _is_spatial_conv(layer)
    )


def _named(model: keras.Model, names: Sequence[str]) -> tuple[str, ...]:
    known = [layer.name for layer in model.layers]
    for name in names:
        if name not in known:
            raise RepairInputError(f"layer {name!r} not in the model; layers are {known}")
    return tuple(names)


def _inbound(model: keras.Model) -> dict[str, set[str]]:
    return {
        entry["name"]: {edge[0] for edge in _edges(entry["inbound_nodes"])}
        for entry in model.get_config()["layers"]
    }


def _edges(value: object) -> Iterator[list]:
    """Every reference ``[layer name, node index, tensor index, ...]`` to a layer's output in
    a serialised layer's inbound nodes, as the config's own (mutable) lists.

    Keras layers nest them as nodes of edges; a TensorFlow operation in the graph (a
    ``TFOpLambda``: ``x + 3``, ``tf.math.add(x, y=skip)``) keeps one edge per node, and its
    other tensor inputs among the edge's keyword arguments. Reading only the positional
    edges would miss a residual connection made with ``+``.
    """
    if _is_edge(value):
        yield value
        for rest in value[3:]:
            yield from _edges(rest)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _edges(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _edges(item)


def _is_edge(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) >= 3
        and isinstance(value[0], str)
        and all(isinstance(index, int) and not isinstance(index, bool) for index in value[1:3])
    )


def _is_cut(name: str, inbound: dict[str, set[str]], order: list[str], output: str) -> bool:
    """Whether removing layer ``name`` disconnects the model's output from its inputs."""
    reaches: set[str] = set()
    for layer in order:  # topological order: a layer's inputs come before it
        if layer == name:
            continue
        sources = inbound[layer]
        if not sources or sources & reaches:
            reaches.add(layer)
    return output not in reaches


def _free_name(model: keras.Model, base: str) -> str:
    names = {layer.name for layer in model.layers}
    suffix = 0
    while (f"{base}_{suffix}" if suffix else base) in names:
        suffix += 1
    return f"{base}_{suffix}" if suffix else base
