"""`HyperResNet`: a tunable ResNet, ResNetV2 or ResNeXt image classifier."""

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

_BN_EPSILON = 1.001e-5
_RESNEXT_GROUPS = 32
_OPTIMIZERS = {
    "adam": keras.optimizers.Adam,
    "rmsprop": keras.optimizers.RMSprop,
    "sgd": keras.optimizers.SGD,
}


class HyperResNet(HyperModel):
    """A ResNet hypermodel for image classification.

    The network has the four bottleneck stages of ResNet-50/101/152, named
    `conv2` to `conv5`, of which the depths of `conv3` and `conv4` are tuned.
    `version` selects the block: "v1" is ResNet, "v2" is ResNetV2 with
    pre-activation and "next" is ResNeXt with 32 groups. The layers are built
    here because `keras.applications` offers only three fixed depths and no
    ResNeXt.

    The classifier ends in a softmax over `classes`, so it expects one-hot
    labels with the default loss, categorical cross-entropy. The built model
    is compiled with the tuned optimizer and the accuracy metric. With
    `include_top=False` the model returns the pooled features and is not
    compiled.

    Hyperparameters, in the order they are declared:

    - `version`: Choice "v1", "v2", "next", default "v2".
    - `conv3_depth`: Choice 4, 8.
    - `conv4_depth`: Choice 6, 23, 36.
    - `pooling`: Choice "avg", "max", default "avg".
    - `optimizer`: Choice "adam", "rmsprop", "sgd", default "adam".
    - `learning_rate`: Choice 0.1, 0.01, 0.001, default 0.01.

    The last two exist only with `include_top=True`.

    Args:
        include_top: Whether to add the softmax classifier. Defaults to
            `True`.
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
        version = hp.Choice("version", ["v1", "v2", "next"], default="v2")
        check_choice_value("version", version, ["v1", "v2", "next"])
        conv3_depth = hp.Choice("conv3_depth", [4, 8])
        conv4_depth = hp.Choice("conv4_depth", [6, 23, 36])
        depths = (3, conv3_depth, conv4_depth, 3)

        inputs, x = make_image_input(self.input_shape, self.input_tensor)
        x = _stem(x, version)
        if version == "v1":
            x = _stages_v1(x, depths)
        elif version == "v2":
            x = _stages_v2(x, depths)
        else:
            x = _stages_resnext(x, depths)

        # ResNetV2 blocks normalize before each convolution, so the output of
        # the last block still needs batch normalization and ReLU.
        if version == "v2":
            x = _batch_norm(x, name="post_bn")
            x = layers.Activation("relu", name="post_relu")(x)

        pooling = hp.Choice("pooling", ["avg", "max"], default="avg")
        check_choice_value("pooling", pooling, ["avg", "max"])
        if pooling == "avg":
            x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        else:
            x = layers.GlobalMaxPooling2D(name="max_pool")(x)
        if not self.include_top:
            return keras.Model(inputs, x, name="ResNet")

        outputs = layers.Dense(self.classes, activation="softmax", name="probs")(x)
        model = keras.Model(inputs, outputs, name="ResNet")

        optimizer_name = hp.Choice(
            "optimizer", ["adam", "rmsprop", "sgd"], default="adam"
        )
        check_choice_value("optimizer", optimizer_name, list(_OPTIMIZERS))
        learning_rate = hp.Choice("learning_rate", [0.1, 0.01, 0.001], default=0.01)
        optimizer_class = _OPTIMIZERS[optimizer_name]
        model.compile(
            optimizer=optimizer_class(learning_rate=learning_rate),
            loss="categorical_crossentropy",
            metrics=["accuracy"],
        )
        return model


def _stem(x: keras.KerasTensor, version: str) -> keras.KerasTensor:
    """Apply the 7x7 convolution of stride 2 and the 3x3 max pooling."""
    use_bias = version != "next"
    x = layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = layers.Conv2D(64, 7, strides=2, use_bias=use_bias, name="conv1_conv")(x)
    if version != "v2":
        x = _batch_norm_relu(x, name="conv1")

    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    return layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)


def _batch_norm(x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    return layers.BatchNormalization(epsilon=_BN_EPSILON, name=name)(x)


def _batch_norm_relu(x: keras.KerasTensor, name: str) -> keras.KerasTensor:
    x = _batch_norm(x, name=f"{name}_bn")
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _stages_v1(x: keras.KerasTensor, depths: Sequence[int]) -> keras.KerasTensor:
    """Apply ResNet stages, each downsampling in its first block except conv2."""
    for stage, (filters, depth) in enumerate(zip((64, 128, 256, 512), depths)):
        name = f"conv{stage + 2}"
        first_strides = 1 if stage == 0 else 2
        x = _block_v1(x, filters, first_strides, True, name=f"{name}_block1")
        for index in range(2, depth + 1):
            x = _block_v1(x, filters, 1, False, name=f"{name}_block{index}")
    return x


def _block_v1(
    x: keras.KerasTensor,
    filters: int,
    strides: int,
    conv_shortcut: bool,
    name: str,
) -> keras.KerasTensor:
    """Apply a bottleneck block with normalization after each convolution."""
    if conv_shortcut:
        shortcut = layers.Conv2D(
            4 * filters, 1, strides=strides, name=f"{name}_0_conv"
        )(x)
        shortcut = _batch_norm(shortcut, name=f"{name}_0_bn")
    else:
        shortcut = x

    x = layers.Conv2D(filters, 1, strides=strides, name=f"{name}_1_conv")(x)
    x = _batch_norm_relu(x, name=f"{name}_1")
    x = layers.Conv2D(filters, 3, padding="same", name=f"{name}_2_conv")(x)
    x = _batch_norm_relu(x, name=f"{name}_2")
    x = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    x = _batch_norm(x, name=f"{name}_3_bn")

    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def _stages_v2(x: keras.KerasTensor, depths: Sequence[int]) -> keras.KerasTensor:
    """Apply ResNetV2 stages, each downsampling in its last block except conv5."""
    for stage, (filters, depth) in enumerate(zip((64, 128, 256, 512), depths)):
        name = f"conv{stage + 2}"
        last_strides = 1 if stage == 3 else 2
        x = _block_v2(x, filters, 1, True, name=f"{name}_block1")
        for index in range(2, depth):
            x = _block_v2(x, filters, 1, False, name=f"{name}_block{index}")
        x = _block_v2(x, filters, last_strides, False, name=f"{name}_block{depth}")
    return x


def _block_v2(
    x: keras.KerasTensor,
    filters: int,
    strides: int,
    conv_shortcut: bool,
    name: str,
) -> keras.KerasTensor:
    """Apply a bottleneck block with normalization before each convolution."""
    preactivation = _batch_norm_relu(x, name=f"{name}_preact")
    if conv_shortcut:
        shortcut = layers.Conv2D(
            4 * filters, 1, strides=strides, name=f"{name}_0_conv"
        )(preactivation)
    elif strides > 1:
        shortcut = layers.MaxPooling2D(1, strides=strides, name=f"{name}_0_pool")(x)
    else:
        shortcut = x

    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_1_conv")(preactivation)
    x = _batch_norm_relu(x, name=f"{name}_1")
    x = layers.ZeroPadding2D(1, name=f"{name}_2_pad")(x)
    x = layers.Conv2D(
        filters, 3, strides=strides, use_bias=False, name=f"{name}_2_conv"
    )(x)
    x = _batch_norm_relu(x, name=f"{name}_2")
    x = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)

    return layers.Add(name=f"{name}_out")([shortcut, x])


def _stages_resnext(x: keras.KerasTensor, depths: Sequence[int]) -> keras.KerasTensor:
    """Apply ResNeXt stages, each downsampling in its first block except conv5.

    NOTE: This follows KerasTuner 1.4.8, which downsamples in conv2 to conv4
    here but in conv3 to conv5 in its v1 stages. The total downsampling is
    the same.
    """
    for stage, (filters, depth) in enumerate(zip((64, 256, 512, 1024), depths)):
        name = f"conv{stage + 2}"
        first_strides = 1 if stage == 3 else 2
        x = _block_resnext(x, filters, first_strides, True, name=f"{name}_block1")
        for index in range(2, depth + 1):
            x = _block_resnext(x, filters, 1, False, name=f"{name}_block{index}")
    return x


def _block_resnext(
    x: keras.KerasTensor,
    filters: int,
    strides: int,
    conv_shortcut: bool,
    name: str,
) -> keras.KerasTensor:
    """Apply a bottleneck block whose 3x3 convolution has 32 groups."""
    out_filters = (64 // _RESNEXT_GROUPS) * filters
    if conv_shortcut:
        shortcut = layers.Conv2D(
            out_filters, 1, strides=strides, use_bias=False, name=f"{name}_0_conv"
        )(x)
        shortcut = _batch_norm(shortcut, name=f"{name}_0_bn")
    else:
        shortcut = x

    x = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_1_conv")(x)
    x = _batch_norm_relu(x, name=f"{name}_1")
    x = layers.ZeroPadding2D(1, name=f"{name}_2_pad")(x)
    x = layers.Conv2D(
        filters,
        3,
        strides=strides,
        groups=_RESNEXT_GROUPS,
        use_bias=False,
        name=f"{name}_2_conv",
    )(x)
    x = _batch_norm_relu(x, name=f"{name}_2")
    x = layers.Conv2D(out_filters, 1, use_bias=False, name=f"{name}_3_conv")(x)
    x = _batch_norm(x, name=f"{name}_3_bn")

    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)
