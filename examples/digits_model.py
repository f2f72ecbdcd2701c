"""A tunable build function: a small dense classifier for scikit-learn's 8x8 digits."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras

if TYPE_CHECKING:
    from tuner_core import HyperParameters

IMAGE_SHAPE = (8, 8)
NUM_CLASSES = 10


def build_model(hp: HyperParameters) -> keras.Model:
    """Build and compile a Flatten-Dense-Dropout-Dense classifier for one trial.

    Tunes the hidden layer's `units`, whether to add `dropout`, and Adam's
    `learning_rate`. The input is one 8x8 image, so specs using this function
    set `sample_shape = [8, 8]` in their `[data]` table.
    """
    model = keras.Sequential(
        [
            keras.Input(shape=IMAGE_SHAPE),
            keras.layers.Flatten(),
            keras.layers.Dense(
                units=hp.Int("units", min_value=32, max_value=128, step=32, default=64),
                activation="relu",
            ),
        ]
    )
    if hp.Boolean("dropout"):
        model.add(keras.layers.Dropout(rate=0.25))
    model.add(keras.layers.Dense(NUM_CLASSES, activation="softmax"))

    learning_rate = hp.Choice("learning_rate", values=[1e-2, 1e-3, 1e-4])
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
