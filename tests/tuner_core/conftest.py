"""Fixtures for tuner_core tests: small real data and the guide's build function."""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

import tuner_core


@pytest.fixture(scope="session")
def digits() -> dict[str, np.ndarray]:
    """Scikit-learn's digits, scaled to [0, 1], 300 training and 100 validation rows."""
    data = load_digits()
    x = (data.images / 16.0).astype("float32")[..., None]
    y = data.target.astype("int64")[:, None]
    return {"x": x[:300], "y": y[:300], "x_val": x[300:400], "y_val": y[300:400]}


def build_guide_model(hp: tuner_core.HyperParameters) -> Any:
    """The build function of KerasTuner's "Tailor the search space" guide."""
    model = keras.Sequential()
    model.add(keras.layers.Flatten())
    model.add(
        keras.layers.Dense(
            units=hp.Int("units", min_value=32, max_value=128, step=32, default=64),
            activation="relu",
        )
    )
    if hp.Boolean("dropout"):
        model.add(keras.layers.Dropout(rate=0.25))
    model.add(keras.layers.Dense(units=10, activation="softmax"))
    learning_rate = hp.Choice("learning_rate", values=[1e-2, 1e-3, 1e-4])
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


@pytest.fixture
def guide_model() -> Any:
    return build_guide_model
