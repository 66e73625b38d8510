"""The demo attackers' architectures: the CSAW DeepID net and two kinds of face classifier
people receive instead, a residual net with BatchNorm and a depthwise-separable
(MobileNet-style) net with BatchNorm, at 64 x 64. The repair knows none of them by name."""

from collections.abc import Callable
from dataclasses import dataclass

from repair.architecture import INPUT_SHAPE, build_deepid
from repair.keras_env import keras


@dataclass(frozen=True)
class Architecture:
    """How to build one architecture, and the image size it takes."""

    build: Callable[[int, tuple[int, int, int]], keras.Model]
    input_shape: tuple[int, int, int]
    learning_rate: float = 1e-3
    """The attacker's Adam learning rate: the BatchNorm nets learn the demo faces in 15
    epochs at 3e-3 (at 1e-3 a 60-identity version was still at chance after 15)."""
    cosine_decay: bool = False
    """Decay the learning rate to 5% over the training (cosine): at a constant 3e-3, one
    ResNet ended its 15 epochs at 69% clean accuracy (another at 95%)."""


def build_resnet(num_classes: int, input_shape: tuple[int, int, int]) -> keras.Model:
    """A small ResNet (He et al., 2016): a stem, three stages of one basic block each
    (16, 32, 64 channels; the last two halve the resolution, with 1x1 projections on the
    shortcut), global average pooling and a softmax layer."""
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="image")
    x = _conv_bn(inputs, 16, 3, 1, "stem")
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.MaxPooling2D(2, name="stem_pool")(x)
    for stage, (filters, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
        x = _basic_block(x, filters, stride, f"stage{stage}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="resnet")


def build_mobilenet(num_classes: int, input_shape: tuple[int, int, int]) -> keras.Model:
    """A small MobileNet (Howard et al., 2017): a strided stem, five depthwise-separable
    blocks (depthwise 3x3, BatchNorm, ReLU6, pointwise 1x1, BatchNorm, ReLU6), global
    average pooling, dropout and a softmax layer."""
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="image")
    x = layers.ReLU(6.0, name="stem_relu")(_conv_bn(inputs, 24, 3, 2, "stem"))
    for block, (filters, stride) in enumerate(
        ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1)), start=1
    ):
        name = f"block{block}"
        x = layers.DepthwiseConv2D(3, stride, padding="same", use_bias=False, name=f"{name}_dw")(x)
        x = layers.BatchNormalization(name=f"{name}_dw_bn")(x)
        x = layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
        x = layers.ReLU(6.0, name=f"{name}_pw_relu")(_conv_bn(x, filters, 1, 1, f"{name}_pw"))
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name="mobilenet")


def _conv_bn(x, filters: int, size: int, stride: int, name: str):
    x = keras.layers.Conv2D(
        filters, size, stride, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    return keras.layers.BatchNormalization(name=f"{name}_bn")(x)


def _basic_block(x, filters: int, stride: int, name: str):
    shortcut = x
    if stride != 1 or int(x.shape[-1]) != filters:
        shortcut = _conv_bn(x, filters, 1, stride, f"{name}_proj")
    y = keras.layers.ReLU(name=f"{name}_relu1")(_conv_bn(x, filters, 3, stride, f"{name}_a"))
    y = _conv_bn(y, filters, 3, 1, f"{name}_b")
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.ReLU(name=f"{name}_out")(y)


ARCHITECTURES: dict[str, Architecture] = {
    "deepid": Architecture(lambda classes, shape: build_deepid(classes, shape), INPUT_SHAPE),
    "resnet": Architecture(build_resnet, (64, 64, 3), 3e-3, cosine_decay=True),
    "mobilenet": Architecture(build_mobilenet, (64, 64, 3), 3e-3, cosine_decay=True),
}
