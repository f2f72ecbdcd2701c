"""An optimizer override while the hypermodel tunes its own optimizer choice."""

from __future__ import annotations

import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

import tuner_core


def build_model(hp: tuner_core.HyperParameters) -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(hp.Choice("units", [8, 16]), activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=hp.Choice("optimizer", ["adam", "sgd"]),
        loss="sparse_categorical_crossentropy",
    )
    return model


def _search(tuner: tuner_core.Tuner, digits: dict[str, np.ndarray]) -> None:
    tuner.search(
        digits["x"],
        digits["y"],
        epochs=1,
        validation_data=(digits["x_val"], digits["y_val"]),
    )


def test_override_warns_once_and_records_optimizer(
    tmp_path: Path, digits: dict[str, np.ndarray]
) -> None:
    tuner = tuner_core.RandomSearch(
        build_model,
        optimizer=keras.optimizers.Adam(learning_rate=0.005),
        objective="val_loss",
        max_trials=4,
        seed=1,
        directory=tmp_path,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _search(tuner, digits)
        _search(tuner, digits)

    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    conflicts = [m for m in messages if "has no effect" in m]
    assert len(conflicts) == 1
    assert conflicts[0].startswith("Hyperparameter 'optimizer' is tuned but has no")
    assert not any("'units'" in m for m in messages)
    assert tuner.override_conflicts == {"optimizer": ["optimizer"]}

    trials = list(tuner.oracle.trials.values())
    assert {t.values["optimizer"] for t in trials} == {"adam", "sgd"}
    for trial in trials:
        assert trial.optimizer["class_name"] == "Adam"
        assert trial.optimizer["config"]["learning_rate"] == pytest.approx(0.005)


def test_records_tuned_optimizer_without_override(
    tmp_path: Path, digits: dict[str, np.ndarray]
) -> None:
    tuner = tuner_core.RandomSearch(
        build_model, objective="val_loss", max_trials=4, seed=1, directory=tmp_path
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _search(tuner, digits)

    assert not any("has no effect" in str(w.message) for w in caught)
    classes = {"adam": "Adam", "sgd": "SGD"}
    for trial in tuner.oracle.trials.values():
        assert trial.optimizer["class_name"] == classes[trial.values["optimizer"]]
