"""The DeepID-style face network of the CSAW-HackML-2020 BadNets, rebuilt in code."""

from repair.keras_env import keras

INPUT_SHAPE: tuple[int, int, int] = (55, 47, 3)
"""Height, width, channels of the YouTube Aligned Face crops."""

CONV_LAYERS: tuple[str, ...] = ("conv_1", "conv_2", "conv_3", "conv_4")
CLASSIFIER_LAYERS: tuple[str, ...] = ("fc_1", "fc_2", "output")


def build_deepid(num_classes: int, input_shape: tuple[int, int, int] = INPUT_SHAPE) -> keras.Model:
    """Build the network with the layer names of the CSAW weight files.

    Layer names matter: CSAW weights-only files are loaded into this network by name.
    """
    layers = keras.layers
    inputs = keras.Input(shape=input_shape, name="input")
    x = layers.Conv2D(20, (4, 4), activation="relu", name="conv_1")(inputs)
    x = layers.MaxPooling2D((2, 2), name="pool_1")(x)
    x = layers.Conv2D(40, (3, 3), activation="relu", name="conv_2")(x)
    x = layers.MaxPooling2D((2, 2), name="pool_2")(x)
    x = layers.Conv2D(60, (3, 3), activation="relu", name="conv_3")(x)
    pool_3 = layers.MaxPooling2D((2, 2), name="pool_3")(x)
    fc_1 = layers.Dense(160, name="fc_1")(layers.Flatten(name="flatten_1")(pool_3))
    conv_4 = layers.Conv2D(80, (2, 2), activation="relu", name="conv_4")(pool_3)
    fc_2 = layers.Dense(160, name="fc_2")(layers.Flatten(name="flatten_2")(conv_4))
    merged = layers.Activation("relu", name="activation_1")(layers.Add(name="add_1")([fc_1, fc_2]))
    outputs = layers.Dense(num_classes, activation="softmax", name="output")(merged)
    return keras.Model(inputs, outputs, name="deepid")
