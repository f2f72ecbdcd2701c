"""`HyperImageAugment`: a tunable image augmentation model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras
from keras import layers, ops

from tuner_core._hypermodel import HyperModel
from tuner_core.applications._inputs import check_image_input, make_image_input

if TYPE_CHECKING:
    from tuner_core._hyperparameters import HyperParameters

# Transform names in the order their hyperparameters are declared.
TRANSFORM_NAMES = ("rotate", "translate_x", "translate_y", "contrast")

# Step of the factor hyperparameters when all transforms are applied in
# sequence (augment_layers=0). The RandAugment factors have no step.
_FIXED_FACTOR_STEP = 0.05


def make_transform_layer(
    transform: str, factor: float, seed: int | None = None
) -> layers.Layer:
    """Create the Keras preprocessing layer of one transform.

    Args:
        transform: One of `TRANSFORM_NAMES`.
        factor: Strength of the transform, from 0 to 1. For "rotate", the
            maximum rotation as a fraction of a full turn. For "translate_x"
            and "translate_y", the maximum shift as a fraction of the width
            or the height. For "contrast", the maximum relative change of
            contrast.
        seed: Seed of the layer's random draws. Defaults to `None`.
    """
    if transform == "rotate":
        return layers.RandomRotation(factor, seed=seed)
    if transform == "translate_x":
        return layers.RandomTranslation(0.0, factor, seed=seed)
    if transform == "translate_y":
        return layers.RandomTranslation(factor, 0.0, seed=seed)
    if transform == "contrast":
        return layers.RandomContrast(factor, seed=seed)
    raise ValueError(
        f"`transform` must be one of {list(TRANSFORM_NAMES)}. "
        f"Received: transform={transform!r}"
    )


@keras.saving.register_keras_serializable(package="tuner_core")
class RandAugment(layers.Layer):
    """A layer that applies one randomly chosen transform to each image.

    For each image of a batch, one of `transforms` is drawn with equal
    probability and applied with its factor. A transform whose factor is 0
    leaves the images that drew it unchanged. Images pass unchanged when the
    layer is not training.

    This is the simplified RandAugment of KerasTuner 1.4.8: stacking N of
    these layers applies N transforms to each image, each transform at the
    factor tuned for the trial rather than at one shared magnitude.

    Args:
        transforms: Names from `TRANSFORM_NAMES`.
        factors: One factor for each transform, from 0 to 1.
        seed: Seed of the random draws. Defaults to `None`.
        **kwargs: Arguments of `keras.layers.Layer`.
    """

    def __init__(
        self,
        transforms: Sequence[str],
        factors: Sequence[float],
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if len(transforms) != len(factors) or not transforms:
            raise ValueError(
                "`transforms` and `factors` must be non-empty and of the same "
                f"length. Received: transforms={list(transforms)!r}, "
                f"factors={list(factors)!r}"
            )

        self.transforms = list(transforms)
        self.factors = [float(factor) for factor in factors]
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

        self.transform_indices = []
        self.transform_layers = []
        for index, (transform, factor) in enumerate(zip(self.transforms, self.factors)):
            if factor == 0:
                continue
            layer_seed = None if seed is None else seed + index
            self.transform_indices.append(index)
            self.transform_layers.append(
                make_transform_layer(transform, factor, seed=layer_seed)
            )

    def call(self, inputs: Any, training: bool = True) -> Any:
        if not training:
            return inputs

        batch_size = ops.shape(inputs)[0]
        selection = keras.random.randint(
            (batch_size, 1, 1, 1),
            minval=0,
            maxval=len(self.transforms),
            seed=self.seed_generator,
        )
        outputs = inputs
        for index, layer in zip(self.transform_indices, self.transform_layers):
            transformed = layer(outputs, training=True)
            outputs = ops.where(ops.equal(selection, index), transformed, outputs)
        return outputs

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {"transforms": self.transforms, "factors": self.factors, "seed": self.seed}
        )
        return config


class HyperImageAugment(HyperModel):
    """An image augmentation hypermodel.

    Builds a model that returns augmented images of the input shape. Its
    random transforms act only in training, so the model passes images
    unchanged in `predict` and `evaluate`. It is meant as the
    `augmentation_model` of `HyperEfficientNet`, or as the first layers of a
    classifier.

    Each transform argument sets the range of that transform's factor
    hyperparameter `factor_<transform>`: a number `x` gives the range 0 to
    `x`, a pair `[x, y]` gives `x` to `y`, and `None` or 0 leaves the
    transform out. Factors lie from 0 to 1, and each range's lower end is
    its default.

    `augment_layers` selects one of two models:

    - 0 or `None`: each enabled transform is applied in turn, at its factor.
      The factors are Floats with step 0.05, and a factor of 0 turns its
      transform off for the trial.
    - An int `n` of at least 1, or a pair `[m, n]`: the Int hyperparameter
      `augment_layers` (1 to `n`, or `m` to `n`, default the lower end) sets
      how many `RandAugment` layers are stacked. Each of them applies one
      transform to each image, drawn from the enabled transforms with equal
      probability. The factors are Floats without a step.

    Hyperparameters, in the order they are declared: `augment_layers` (with
    RandAugment only), then `factor_rotate`, `factor_translate_x`,
    `factor_translate_y` and `factor_contrast`, each only when its transform
    is enabled. With RandAugment and `augment_layers` 0 in a trial, no
    factor is declared.

    NOTE: KerasTuner 1.4.8 shifts images vertically for `translate_x` and
    horizontally for `translate_y`, unlike its documentation. Here they
    shift along the width and the height, as documented.

    Args:
        input_shape: Shape of one image, `(height, width, channels)`. One of
            `input_shape` and `input_tensor` is required. Defaults to `None`.
        input_tensor: Keras tensor, such as the output of `keras.Input()`,
            to use as the image input. Defaults to `None`.
        rotate: Range of the maximum rotation, as a fraction of a full turn.
            Defaults to 0.5.
        translate_x: Range of the maximum horizontal shift, as a fraction of
            the width. Defaults to 0.4.
        translate_y: Range of the maximum vertical shift, as a fraction of
            the height. Defaults to 0.4.
        contrast: Range of the maximum relative change of contrast. Defaults
            to 0.3.
        augment_layers: 0, `None`, an int or a pair of ints, as described
            above. Defaults to 3.
        **kwargs: `name` and `tunable`, passed to `HyperModel`.
    """

    def __init__(
        self,
        input_shape: Sequence[int | None] | None = None,
        input_tensor: keras.KerasTensor | None = None,
        rotate: float | Sequence[float] | None = 0.5,
        translate_x: float | Sequence[float] | None = 0.4,
        translate_y: float | Sequence[float] | None = 0.4,
        contrast: float | Sequence[float] | None = 0.3,
        augment_layers: int | Sequence[int] | None = 3,
        **kwargs: Any,
    ) -> None:
        self.input_shape = check_image_input(input_shape, input_tensor)
        self.input_tensor = input_tensor

        arguments = {
            "rotate": rotate,
            "translate_x": translate_x,
            "translate_y": translate_y,
            "contrast": contrast,
        }
        self.transforms: list[tuple[str, tuple[float, float]]] = []
        for transform in TRANSFORM_NAMES:
            factor_range = _check_factor_range(transform, arguments[transform])
            if factor_range is not None:
                self.transforms.append((transform, factor_range))
        if not self.transforms:
            raise ValueError(
                "At least one of `rotate`, `translate_x`, `translate_y` and "
                "`contrast` must be enabled, but all are None or 0. Pass a "
                "maximum factor for one of them, e.g. rotate=0.5."
            )

        layer_range = _check_augment_layers(augment_layers)
        self.rand_augment = layer_range is not None
        if layer_range is None:
            self.model_name = "image_augment"
        else:
            self.model_name = "image_rand_augment"
            self.augment_layers_min, self.augment_layers_max = layer_range

        super().__init__(**kwargs)

    def build(self, hp: HyperParameters) -> keras.Model:
        inputs, x = make_image_input(self.input_shape, self.input_tensor)
        if self.rand_augment:
            x = self._add_rand_augment_layers(x, hp)
        else:
            x = self._add_transform_layers(x, hp)
        return keras.Model(inputs, x, name=self.model_name)

    def _add_rand_augment_layers(
        self, x: keras.KerasTensor, hp: HyperParameters
    ) -> keras.KerasTensor:
        num_layers = hp.Int(
            "augment_layers",
            self.augment_layers_min,
            self.augment_layers_max,
            default=self.augment_layers_min,
        )
        for index in range(1, num_layers + 1):
            # Every RandAugment layer of a trial shares the same factors.
            factors = [
                hp.Float(f"factor_{name}", low, high, default=low)
                for name, (low, high) in self.transforms
            ]
            names = [name for name, _ in self.transforms]
            x = RandAugment(names, factors, name=f"rand_augment_{index}")(x)
        return x

    def _add_transform_layers(
        self, x: keras.KerasTensor, hp: HyperParameters
    ) -> keras.KerasTensor:
        for name, (low, high) in self.transforms:
            factor = hp.Float(
                f"factor_{name}", low, high, step=_FIXED_FACTOR_STEP, default=low
            )
            if factor == 0:
                continue
            x = make_transform_layer(name, factor)(x)
        return x


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_factor_range(transform: str, value: Any) -> tuple[float, float] | None:
    """Return the factor range of a transform argument, or None when it is off."""
    if value is None or (_is_number(value) and value == 0):
        return None

    if _is_number(value):
        low, high = 0.0, float(value)
    elif (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(_is_number(bound) for bound in value)
    ):
        low, high = float(value[0]), float(value[1])
    else:
        raise ValueError(
            f"`{transform}` must be a number, a pair of numbers [min, max] "
            f"or None. Received: {transform}={value!r}"
        )

    if not 0 <= low <= high <= 1:
        raise ValueError(
            f"`{transform}` must lie from 0 to 1, with min <= max when it is "
            f"a pair. Received: {transform}={value!r}"
        )
    return low, high


def _check_augment_layers(value: Any) -> tuple[int, int] | None:
    """Return the range of the number of RandAugment layers, or None for none."""
    if value is None or (_is_int(value) and value == 0):
        return None

    if _is_int(value):
        low, high = 1, value
    elif (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(_is_int(bound) for bound in value)
    ):
        low, high = value
    else:
        raise ValueError(
            "`augment_layers` must be an int, a pair of ints [min, max] or "
            f"None. Received: augment_layers={value!r}"
        )

    if not 0 <= low <= high:
        raise ValueError(
            "`augment_layers` must be at least 0, with min <= max when it is "
            f"a pair. Received: augment_layers={value!r}"
        )
    return low, high


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
