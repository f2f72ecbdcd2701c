"""Tiny hypermodels for the pipeline tests, imported through spec `hypermodel` paths."""

from __future__ import annotations

from typing import Any

import keras

from tuner_core import HyperModel, HyperParameters


def build_tiny_model(hp: HyperParameters) -> keras.Model:
    """Build a small digits classifier: 8 or 16 units, optional dropout, two rates."""
    model = keras.Sequential(
        [
            keras.Input(shape=(8, 8)),
            keras.layers.Flatten(),
            keras.layers.Dense(
                hp.Int("units", min_value=8, max_value=16, step=8), activation="relu"
            ),
        ]
    )
    if hp.Boolean("dropout"):
        model.add(keras.layers.Dropout(rate=0.25))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(
        optimizer=keras.optimizers.Adam(hp.Choice("learning_rate", [1e-2, 1e-3])),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


class FailingFitModel(HyperModel):
    """Builds the tiny model, then fails every fit, as a broken training loop would."""

    def build(self, hp: HyperParameters) -> keras.Model:
        return build_tiny_model(hp)

    def fit(self, hp: HyperParameters, model: Any, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("training diverged in this test hypermodel")
