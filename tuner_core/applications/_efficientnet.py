"""`HyperEfficientNet`: a tunable EfficientNet image classifier."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Union

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

WeightsPath = Union[str, "os.PathLike[str]"]

# Default image size of each version in pixels, as set by
# keras.applications.EfficientNetB0 to B7 (Keras 3.15). Inputs are resized to it.
_IMAGE_SIZES = {
    "B0": 224,
    "B1": 240,
    "B2": 260,
    "B3": 300,
    "B4": 380,
    "B5": 456,
    "B6": 528,
    "B7": 600,
}
_BACKBONES: dict[str, Callable[..., keras.Model]] = {
    "B0": keras.applications.EfficientNetB0,
    "B1": keras.applications.EfficientNetB1,
    "B2": keras.applications.EfficientNetB2,
    "B3": keras.applications.EfficientNetB3,
    "B4": keras.applications.EfficientNetB4,
    "B5": keras.applications.EfficientNetB5,
    "B6": keras.applications.EfficientNetB6,
    "B7": keras.applications.EfficientNetB7,
}


class HyperEfficientNet(HyperModel):
    """An EfficientNet hypermodel for image classification.

    Images pass through the optional augmentation model, are resized to the
    image size of the chosen version and go through
    `keras.applications.EfficientNet<version>` without its top, then through
    global pooling, dropout and a softmax over `classes`. The model expects
    one-hot labels with the default loss, categorical cross-entropy, and is
    compiled with SGD (momentum 0.1) and the accuracy metric. Subclasses can
    change the compile settings by overriding `_compile`.

    No weights are downloaded. The backbone starts from random initialization
    unless `weights` names a local file.

    Hyperparameters, in the order they are declared (after those of a
    `HyperModel` passed as `augmentation_model`):

    - `version`: Choice "B0" to "B7", default "B0".
    - `pooling`: Choice "avg", "max", default "avg".
    - `top_dropout_rate`: Float 0.2 to 0.8, step 0.2, default 0.2.
    - `learning_rate`: Choice 0.1, 0.01, 0.001, default 0.01.

    Args:
        input_shape: Shape of one image, `(height, width, channels)`. One of
            `input_shape` and `input_tensor` is required. Defaults to `None`.
        input_tensor: Keras tensor, such as the output of `keras.Input()`,
            to use as the image input. Defaults to `None`.
        classes: Number of classes. Required.
        augmentation_model: A `keras.Model` or a `HyperModel`, such as
            `HyperImageAugment`, applied to the images first. Defaults to
            `None`.
        weights: Local weights file for the backbone, or a mapping from
            version ("B0" to "B7") to such a file. A file must come from
            `keras.applications.EfficientNet<version>(include_top=False)` with
            the same number of image channels, for example saved with
            `save_weights("b0.weights.h5")`. A single file suits one version
            only, so fix `version` with `hp.Fixed` when passing one. With a
            mapping, building a version it lacks raises `ValueError`.
            Defaults to `None`, for random initialization. This argument is
            not part of KerasTuner.
        **kwargs: `name` and `tunable`, passed to `HyperModel`.
    """

    def __init__(
        self,
        input_shape: Sequence[int | None] | None = None,
        input_tensor: keras.KerasTensor | None = None,
        classes: int | None = None,
        augmentation_model: HyperModel | keras.Model | None = None,
        weights: WeightsPath | Mapping[str, WeightsPath] | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(augmentation_model, (HyperModel, keras.Model, type(None))):
            raise ValueError(
                "`augmentation_model` must be a HyperModel, a keras.Model or "
                f"None. Received: augmentation_model={augmentation_model!r} of "
                f"type {type(augmentation_model).__name__}"
            )
        check_classes(classes, required=True)

        super().__init__(**kwargs)
        self.input_shape = check_image_input(input_shape, input_tensor)
        self.input_tensor = input_tensor
        self.classes = classes
        self.augmentation_model = augmentation_model
        self.weights = _check_weights(weights)

    def build(self, hp: HyperParameters) -> keras.Model:
        inputs, x = make_image_input(self.input_shape, self.input_tensor)
        if isinstance(self.augmentation_model, HyperModel):
            x = self.augmentation_model.build(hp)(x)
        elif self.augmentation_model is not None:
            x = self.augmentation_model(x)

        version = hp.Choice("version", list(_IMAGE_SIZES), default="B0")
        check_choice_value("version", version, list(_IMAGE_SIZES))
        image_size = _IMAGE_SIZES[version]
        x = layers.Resizing(image_size, image_size, name="resize")(x)
        backbone = _BACKBONES[version](
            include_top=False,
            weights=self._weights_file(version),
            input_shape=(image_size, image_size, x.shape[-1]),
        )
        x = backbone(x)

        pooling = hp.Choice("pooling", ["avg", "max"], default="avg")
        check_choice_value("pooling", pooling, ["avg", "max"])
        if pooling == "avg":
            x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        else:
            x = layers.GlobalMaxPooling2D(name="max_pool")(x)
        dropout_rate = hp.Float(
            "top_dropout_rate", min_value=0.2, max_value=0.8, step=0.2, default=0.2
        )
        x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        outputs = layers.Dense(self.classes, activation="softmax", name="probs")(x)

        model = keras.Model(inputs, outputs, name="EfficientNet")
        self._compile(model, hp)
        return model

    def _compile(self, model: keras.Model, hp: HyperParameters) -> None:
        """Compile `model` with SGD at the tuned learning rate."""
        learning_rate = hp.Choice("learning_rate", [0.1, 0.01, 0.001], default=0.01)
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.1),
            loss="categorical_crossentropy",
            metrics=["accuracy"],
        )

    def _weights_file(self, version: str) -> str | None:
        if self.weights is None or isinstance(self.weights, str):
            return self.weights

        if version not in self.weights:
            raise ValueError(
                f"`weights` has no file for version {version!r}. It has files "
                f"for {sorted(self.weights)}. Add a file for {version!r}, or "
                "limit the versions to those with a file, e.g. "
                f"hp.Choice('version', {sorted(self.weights)})."
            )
        return self.weights[version]


def _check_weights(
    weights: WeightsPath | Mapping[str, WeightsPath] | None,
) -> str | dict[str, str] | None:
    """Check that `weights` names local files, and return their paths as str."""
    if weights is None:
        return None
    if not isinstance(weights, Mapping):
        return _check_weights_file(weights, "weights")

    files = {}
    for version, path in weights.items():
        if version not in _IMAGE_SIZES:
            raise ValueError(
                "The keys of `weights` must be EfficientNet versions from "
                f"{list(_IMAGE_SIZES)}. Received: key {version!r}"
            )
        files[version] = _check_weights_file(path, f"weights[{version!r}]")
    return files


def _check_weights_file(path: Any, argument: str) -> str:
    if path == "imagenet":
        raise ValueError(
            f"`{argument}` must be the path of a local weights file, because "
            "HyperEfficientNet never downloads weights. Received: "
            f"{argument}='imagenet'. Pass the path of a file saved from "
            "keras.applications.EfficientNet<version>(include_top=False), "
            "or None for random initialization."
        )
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(
            f"`{argument}` must be a file path (str or os.PathLike). "
            f"Received: {argument}={path!r} of type {type(path).__name__}"
        )
    if not os.path.isfile(path):
        raise ValueError(
            f"`{argument}` must be an existing local weights file, but "
            f"{os.fspath(path)!r} is not a file. Check the path, or pass None "
            "for random initialization."
        )
    return os.fspath(path)
