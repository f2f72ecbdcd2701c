"""`HyperXception`: a tunable Xception-style image classifier."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras
from keras import layers

from tuner_core._hypermodel import HyperModel
from tuner_core.applications._inputs import (
    check_choice_value,
    check_classes,
    check_image_input,
    make_image_input,
)

if TYPE_CHECKING:
    from tuner_core._hyperparameters import HyperParameters


class HyperXception(HyperModel):
    """An Xception-style hypermodel for image classification.

    The model is assembled from its own layers instead of
    `keras.applications.Xception`, which needs images of at least 71x71. An
    entry convolution with stride 2 is followed by residual blocks of
    separable convolutions that keep the resolution, and by one exit block
    that halves it, so images of 28x28 are fine.

    The classifier ends in a softmax over `classes`, so it expects one-hot
    labels with the default loss, categorical cross-entropy. The built model
    is compiled with Adam and the accuracy metric. With `include_top=False`
    the model returns the pooled features and is not compiled.

    Hyperparameters, in the order they are declared:

    - `activation`: Choice "relu", "selu".
    - `conv2d_num_filters`: Choice 32, 64, 128, default 64.
    - `kernel_size`: Choice 3, 5, for the entry convolution.
    - `initial_strides`: Choice 2.
    - `sep_num_filters`: Int 128 to 768, step 128, default 256.
    - `num_residual_blocks`: Int 2 to 8, default 4.
    - `pooling`: Choice "avg", "flatten", "max".
    - `num_dense_layers`: Int 1 to 3. Each dense layer has `classes` units.
    - `dropout_rate`: Float 0.0 to 0.6, step 0.1, default 0.5.
    - `dense_use_bn`: Choice 1, 0 (true, false). Only ReLU dense layers use
      it.
    - `learning_rate`: Choice 1e-3, 1e-4, 1e-5.

    The last four exist only with `include_top=True`.

    Args:
        include_top: Whether to add the dense layers and the softmax
            classifier. Defaults to `True`.
        input_shape: Shape of one image, `(height, width, channels)`. One of
            `input_shape` and `input_tensor` is required. Defaults to `None`.
        input_tensor: Keras tensor, such as the output of `keras.Input()`,
            to use as the image input. Defaults to `None`.
        classes: Number of classes, required when `include_top=True`.
            Defaults to `None`.
        **kwargs: `name` and `tunable`, passed to `HyperModel`.
    """

    def __init__(
        self,
        include_top: bool = True,
        input_shape: Sequence[int | None] | None = None,
        input_tensor: keras.KerasTensor | None = None,
        classes: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_classes(classes, required=include_top)

        self.include_top = include_top
        self.input_shape = check_image_input(input_shape, input_tensor)
        self.input_tensor = input_tensor
        self.classes = classes

    def build(self, hp: HyperParameters) -> keras.Model:
        activation = hp.Choice("activation", ["relu", "selu"])
        check_choice_value("activation", activation, ["relu", "selu"])
        inputs, x = make_image_input(self.input_shape, self.input_tensor)

        entry_filters = hp.Choice("conv2d_num_filters", [32, 64, 128], default=64)
        kernel_size = hp.Choice("kernel_size", [3, 5])
        strides = hp.Choice("initial_strides", [2])
        x = _entry_conv(x, entry_filters, kernel_size, strides, activation)

        block_filters = hp.Int("sep_num_filters", 128, 768, step=128, default=256)
        num_blocks = hp.Int("num_residual_blocks", 2, 8, default=4)
        for index in range(1, num_blocks + 1):
            x = _residual_block(
                x, block_filters, activation, downsample=False, name=f"block{index}"
            )
        x = _residual_block(
            x, 2 * block_filters, activation, downsample=True, name="exit"
        )

        pooling = hp.Choice("pooling", ["avg", "flatten", "max"])
        check_choice_value("pooling", pooling, ["avg", "flatten", "max"])
        x = _pool(x, pooling)
        if not self.include_top:
            return keras.Model(inputs, x, name="Xception")

        num_dense_layers = hp.Int("num_dense_layers", 1, 3)
        dropout_rate = hp.Float("dropout_rate", 0.0, 0.6, step=0.1, default=0.5)
        # KerasTuner 1.4.8 registers this Choice as [1, 0] with default 1,
        # because it stores bools as ints. The same values are used here.
        use_batch_norm = hp.Choice("dense_use_bn", [1, 0])
        for index in range(1, num_dense_layers + 1):
            x = _dense_block(
                x,
                self.classes,
                activation,
                use_batch_norm,
                dropout_rate,
                name=f"dense{index}",
            )
        outputs = layers.Dense(self.classes, activation="softmax", name="probs")(x)

        model = keras.Model(inputs, outputs, name="Xception")
        learning_rate = hp.Choice("learning_rate", [1e-3, 1e-4, 1e-5])
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
            loss="categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model


# With SELU, layers use its activation and LeCun normal initialization, and
# skip batch normalization. With ReLU, a bias-free layer is followed by batch
# normalization and the activation.


def _entry_conv(
    x: keras.KerasTensor,
    filters: int,
    kernel_size: int,
    strides: int,
    activation: str,
) -> keras.KerasTensor:
    if activation == "selu":
        return layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding="same",
            activation="selu",
            kernel_initializer="lecun_normal",
            name="entry_conv",
        )(x)

    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        name="entry_conv",
    )(x)
    x = layers.BatchNormalization(name="entry_bn")(x)
    return layers.Activation("relu", name="entry_relu")(x)


def _separable_conv(
    x: keras.KerasTensor, filters: int, activation: str, name: str
) -> keras.KerasTensor:
    if activation == "selu":
        return layers.SeparableConv2D(
            filters,
            3,
            padding="same",
            activation="selu",
            depthwise_initializer="lecun_normal",
            pointwise_initializer="lecun_normal",
            name=f"{name}_sepconv",
        )(x)

    x = layers.SeparableConv2D(
        filters, 3, padding="same", use_bias=False, name=f"{name}_sepconv"
    )(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _residual_block(
    x: keras.KerasTensor,
    filters: int,
    activation: str,
    downsample: bool,
    name: str,
) -> keras.KerasTensor:
    """Apply two separable convolutions plus a shortcut.

    With `downsample`, a 3x3 max pooling of stride 2 ends the main path and
    the shortcut is a 1x1 convolution of stride 2. Otherwise the shortcut is
    the input itself, or a 1x1 convolution when the channel count changes.
    """
    if downsample:
        shortcut = layers.Conv2D(
            filters, 1, strides=2, padding="same", name=f"{name}_shortcut"
        )(x)
    elif x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, padding="same", name=f"{name}_shortcut")(x)
    else:
        shortcut = x

    x = _separable_conv(x, filters, activation, name=f"{name}_1")
    x = _separable_conv(x, filters, activation, name=f"{name}_2")
    if downsample:
        x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"{name}_pool")(x)

    return layers.Add(name=f"{name}_add")([x, shortcut])


def _pool(x: keras.KerasTensor, pooling: str) -> keras.KerasTensor:
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="max_pool")(x)
    return layers.Flatten(name="flatten")(x)


def _dense_block(
    x: keras.KerasTensor,
    units: int,
    activation: str,
    use_batch_norm: int,
    dropout_rate: float,
    name: str,
) -> keras.KerasTensor:
    if activation == "selu":
        x = layers.Dense(
            units,
            activation="selu",
            kernel_initializer="lecun_normal",
            name=name,
        )(x)
    else:
        x = layers.Dense(units, activation="relu", name=name)(x)
        if use_batch_norm:
            x = layers.BatchNormalization(name=f"{name}_bn")(x)

    if dropout_rate:
        x = layers.Dropout(dropout_rate, name=f"{name}_dropout")(x)
    return x
