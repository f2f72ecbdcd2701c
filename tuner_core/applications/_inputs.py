"""Argument checks and input layers shared by the pre-built hypermodels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

_SHAPE_EXAMPLE = "input_shape=(28, 28, 1)"


def check_image_input(
    input_shape: Sequence[int | None] | None,
    input_tensor: Any,
) -> tuple[int | None, ...] | None:
    """Check the image input arguments of a hypermodel.

    Args:
        input_shape: `(height, width, channels)` of one image, or `None`.
        input_tensor: A Keras tensor of shape `(batch, height, width,
            channels)`, or `None`.

    Returns:
        `input_shape` as a tuple, or `None` when it was not given.

    Raises:
        ValueError: Both arguments are `None`, one of them is malformed, or
            both are given and disagree on the image shape.
    """
    if input_shape is None and input_tensor is None:
        raise ValueError(
            "`input_shape` or `input_tensor` is required, but both are None. "
            f"Pass the shape of one image, e.g. {_SHAPE_EXAMPLE}, or "
            "input_tensor=keras.Input(shape=(height, width, channels))."
        )

    shape = None
    if input_shape is not None:
        shape = _check_shape(input_shape)
    if input_tensor is None:
        return shape

    if not isinstance(input_tensor, keras.KerasTensor):
        raise ValueError(
            "`input_tensor` must be a Keras tensor, such as the output of "
            "keras.Input(). Received: input_tensor of type "
            f"{type(input_tensor).__name__}. To pass images as data, give "
            "their shape as input_shape instead."
        )
    if len(input_tensor.shape) != 4:
        raise ValueError(
            "`input_tensor` must have shape (batch, height, width, channels). "
            f"Received: input_tensor with shape {input_tensor.shape}"
        )
    if shape is not None and tuple(input_tensor.shape[1:]) != shape:
        raise ValueError(
            "`input_shape` and `input_tensor` must describe the same image shape. "
            f"Received: input_shape={shape} and input_tensor with shape "
            f"{input_tensor.shape}. Pass only one of them."
        )
    return shape


def _check_shape(input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
    is_sequence = isinstance(input_shape, Sequence) and not isinstance(input_shape, str)
    if not is_sequence or len(input_shape) != 3:
        raise ValueError(
            "`input_shape` must be (height, width, channels), e.g. "
            f"{_SHAPE_EXAMPLE}. Received: input_shape={input_shape!r}"
        )

    for size in input_shape:
        if size is None:
            continue
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(
                "Each entry of `input_shape` must be a positive int or None. "
                f"Received: input_shape={tuple(input_shape)!r}"
            )
    return tuple(input_shape)


def check_classes(classes: Any, required: bool) -> None:
    """Check the number of classes of a classification head.

    Raises:
        ValueError: `classes` is `None` while `required` is true, or it is
            not an int of at least 1.
    """
    if classes is None:
        if required:
            raise ValueError(
                "`classes` is required when the model has a classification "
                "head (include_top=True), but got classes=None. Pass the "
                "number of classes, e.g. classes=10."
            )
        return

    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(
            "`classes` must be an int of at least 1, e.g. classes=10. "
            f"Received: classes={classes!r}"
        )


def make_image_input(
    input_shape: tuple[int | None, ...] | None,
    input_tensor: keras.KerasTensor | None,
) -> tuple[keras.KerasTensor | list[keras.KerasTensor], keras.KerasTensor]:
    """Create the model input for one build.

    Returns:
        The model's input tensor, and the tensor the first layer is applied
        to. They differ when `input_tensor` is the output of other layers,
        whose source input then becomes the model's input.
    """
    if input_tensor is None:
        inputs = keras.Input(shape=input_shape)
        return inputs, inputs

    source_inputs = keras.utils.get_source_inputs(input_tensor)
    if len(source_inputs) == 1:
        return source_inputs[0], input_tensor
    return source_inputs, input_tensor


def check_choice_value(name: str, value: Any, allowed: Sequence[Any]) -> None:
    """Check a hyperparameter value that selects a part of the model.

    A hyperparameter the user declared before the build overrides the
    hypermodel's own declaration, so its value can lie outside the values
    the hypermodel declares.

    Raises:
        ValueError: `value` is not in `allowed`.
    """
    if value not in allowed:
        raise ValueError(
            f"Hyperparameter {name!r} must be one of {list(allowed)}, but its "
            f"value is {value!r}. If the HyperParameters passed to the tuner "
            f"declare {name!r}, limit its values to these."
        )
