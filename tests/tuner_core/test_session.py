"""Keras settings that one trial changes do not reach the next trial in the process."""

from __future__ import annotations

import keras
import numpy as np

import tuner_core
from tuner_core import HyperParameters, Objective


def build_changing_settings(hp: HyperParameters) -> keras.Model:
    """Build a small model, then change settings that `clear_session()` keeps."""
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(hp.Int("units", 8, 16, step=8), activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    keras.config.set_epsilon(0.5)
    keras.config.set_floatx("float16")
    keras.config.set_image_data_format("channels_first")
    return model


def keras_settings() -> tuple[float, str, str]:
    return (
        keras.config.epsilon(),
        keras.config.floatx(),
        keras.config.image_data_format(),
    )


def test_run_trial_restores_keras_settings(digits: dict[str, np.ndarray]) -> None:
    before = keras_settings()

    tuner_core.run_trial(
        tuner_core.resolve_hypermodel(build_changing_settings),
        HyperParameters(),
        {"units": 8},
        objective=Objective("val_loss", "min"),
        x=digits["x"],
        y=digits["y"],
        validation_data=(digits["x_val"], digits["y_val"]),
        fit_kwargs={"epochs": 1},
    )

    assert keras_settings() == before
    assert before == (1e-7, "float32", "channels_last")


def test_search_space_exploration_restores_keras_settings() -> None:
    before = keras_settings()

    space = tuner_core.build_search_space(
        tuner_core.resolve_hypermodel(build_changing_settings)
    )

    assert [entry.name for entry in space.space] == ["units"]
    assert keras_settings() == before


def test_layer_names_restart_each_trial(digits: dict[str, np.ndarray]) -> None:
    names = []
    for _ in range(2):
        outcome = tuner_core.run_trial(
            tuner_core.resolve_hypermodel(build_changing_settings),
            HyperParameters(),
            {"units": 8},
            objective=Objective("loss", "min"),
            x=digits["x"],
            y=digits["y"],
            fit_kwargs={"epochs": 1},
        )
        names.append([layer.name for layer in outcome.model.layers])

    assert names[0] == names[1]
