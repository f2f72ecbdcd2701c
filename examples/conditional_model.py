"""A build function with conditional hyperparameters, for scikit-learn's 8x8 digits."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras

if TYPE_CHECKING:
    from tuner_core import HyperParameters

IMAGE_SHAPE = (8, 8)
NUM_CLASSES = 10


def build_model(hp: HyperParameters) -> keras.Model:
    """Build a classifier with 0, 1 or 2 hidden layers.

    `u1` and `use_do` exist only with one or two hidden layers, `rate` only
    when `use_do` is true, and `u2` only with two hidden layers. An inactive
    hyperparameter reads as None here, and a trial records only its active
    ones.
    """
    n_dense = hp.Int("n_dense", 0, 2)
    with hp.conditional_scope("n_dense", [1, 2]):
        u1 = hp.Int("u1", 16, 128, step=16)
        use_do = hp.Boolean("use_do")
        with hp.conditional_scope("use_do", [True]):
            rate = hp.Float("rate", 0.1, 0.5, step=0.1)
    with hp.conditional_scope("n_dense", [2]):
        u2 = hp.Int("u2", 16, 64, step=16)

    model = keras.Sequential([keras.Input(shape=IMAGE_SHAPE), keras.layers.Flatten()])
    if n_dense >= 1:
        model.add(keras.layers.Dense(u1, activation="relu"))
        if use_do:
            model.add(keras.layers.Dropout(rate))
    if n_dense == 2:
        model.add(keras.layers.Dense(u2, activation="relu"))
    model.add(keras.layers.Dense(NUM_CLASSES, activation="softmax"))
    model.compile(
        optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model
