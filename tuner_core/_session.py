"""Resetting Keras's global state between model builds."""

from __future__ import annotations

import keras


def reset_keras_session() -> None:
    """Clear Keras's global state before a build, without a full garbage collection.

    `keras.backend.clear_session()` runs `gc.collect()` by default, which takes
    most of a second in a process that also contains Prefect and MLflow objects
    (measured with py-spy on 2 CPU cores). Python's own collector frees the
    old models' cycles soon after.
    """
    keras.backend.clear_session(free_memory=False)
