"""Resetting Keras's global state between model builds."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras

# Process-wide settings of `keras.config` that `clear_session()` keeps (Keras
# 3.15), as (getter, setter) names. `clear_session()` itself resets the dtype
# policy and the counters behind automatic layer names.
_KEPT_SETTINGS = (
    ("floatx", "set_floatx"),
    ("epsilon", "set_epsilon"),
    ("image_data_format", "set_image_data_format"),
    ("max_epochs", "set_max_epochs"),
    ("max_steps_per_epoch", "set_max_steps_per_epoch"),
)


def reset_keras_session() -> None:
    """Clear Keras's global state before a build, without a full garbage collection.

    `keras.backend.clear_session()` runs `gc.collect()` by default, which takes
    most of a second in a process that also contains Prefect and MLflow objects
    (measured with py-spy on 2 CPU cores). Python's own collector frees the
    old models' cycles soon after.
    """
    keras.backend.clear_session(free_memory=False)


@contextlib.contextmanager
def keras_settings_restored() -> Iterator[None]:
    """Restore the `keras.config` settings that `clear_session()` keeps, on exit.

    A build function that calls `keras.config.set_floatx("float64")` would
    otherwise change every later trial that runs in the same process.
    """
    saved = [
        (getattr(keras.config, setter), getattr(keras.config, getter)())
        for getter, setter in _KEPT_SETTINGS
        if hasattr(keras.config, setter)
    ]
    try:
        yield
    finally:
        for setter, value in saved:
            setter(value)
