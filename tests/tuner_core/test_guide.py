"""KerasTuner's guide "Tailor the search space", run through `tuner_core`.

Each test follows one section of the guide with the guide's API calls and the
random data it makes, importing `tuner_core` under KerasTuner's module name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import tuner_core as keras_tuner

SEARCH_A_FEW_SUMMARY = """\
Search space summary
Default search space size: 1
learning_rate (Float)
{'default': 0.0001, 'conditions': [], 'min_value': 0.0001, 'max_value': 0.01, \
'step': None, 'sampling': 'log'}
"""

FIX_A_FEW_SUMMARY = """\
Search space summary
Default search space size: 3
learning_rate (Fixed)
{'conditions': [], 'value': 0.0001}
units (Int)
{'default': 64, 'conditions': [], 'min_value': 32, 'max_value': 128, 'step': 32, \
'sampling': 'linear'}
dropout (Boolean)
{'default': False, 'conditions': []}
"""

XCEPTION_SUMMARY = """\
Search space summary
Default search space size: 1
learning_rate (Choice)
{'default': 0.01, 'conditions': [], 'values': [0.01, 0.001, 0.0001], 'ordered': True}
"""


def build_model(hp: keras_tuner.HyperParameters) -> keras.Model:
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
    model.compile(
        optimizer=keras.optimizers.Adam(
            learning_rate=hp.Choice("learning_rate", values=[1e-2, 1e-3, 1e-4])
        ),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


@pytest.fixture(scope="module")
def guide_data() -> dict[str, np.ndarray]:
    """The guide's random images and labels: 100 for training, 20 for validation."""
    np.random.seed(0)
    return {
        "x_train": np.random.rand(100, 28, 28, 1),
        "y_train": np.random.randint(0, 10, (100, 1)),
        "x_val": np.random.rand(20, 28, 28, 1),
        "y_val": np.random.randint(0, 10, (20, 1)),
    }


def _search(tuner: Any, data: dict[str, np.ndarray]) -> None:
    tuner.search(
        data["x_train"],
        data["y_train"],
        epochs=1,
        validation_data=(data["x_val"], data["y_val"]),
    )


def _completed_trials(tuner: Any) -> list[keras_tuner.Trial]:
    trials = list(tuner.oracle.trials.values())
    assert all(t.status == keras_tuner.TrialStatus.COMPLETED for t in trials)
    return trials


def test_default_build_works() -> None:
    model = build_model(keras_tuner.HyperParameters())

    assert isinstance(model, keras.Model)


def test_search_a_few(
    tmp_path: Path, guide_data: dict[str, np.ndarray], capsys: Any
) -> None:
    hp = keras_tuner.HyperParameters()
    hp.Float("learning_rate", min_value=1e-4, max_value=1e-2, sampling="log")
    tuner = keras_tuner.RandomSearch(
        hypermodel=build_model,
        hyperparameters=hp,
        tune_new_entries=False,
        objective="val_accuracy",
        max_trials=3,
        overwrite=True,
        directory=tmp_path,
        project_name="search_a_few",
    )
    _search(tuner, guide_data)
    capsys.readouterr()

    tuner.search_space_summary()

    assert capsys.readouterr().out == SEARCH_A_FEW_SUMMARY
    trials = _completed_trials(tuner)
    assert len(trials) == 3
    for trial in trials:
        assert 1e-4 <= trial.values["learning_rate"] <= 1e-2
        assert trial.values["units"] == 64
        assert trial.values["dropout"] is False


def test_fix_a_few(
    tmp_path: Path, guide_data: dict[str, np.ndarray], capsys: Any
) -> None:
    hp = keras_tuner.HyperParameters()
    hp.Fixed("learning_rate", value=1e-4)
    tuner = keras_tuner.RandomSearch(
        build_model,
        hyperparameters=hp,
        tune_new_entries=True,
        objective="val_accuracy",
        max_trials=3,
        overwrite=True,
        directory=tmp_path,
        project_name="fix_a_few",
    )
    _search(tuner, guide_data)
    capsys.readouterr()

    tuner.search_space_summary()

    assert capsys.readouterr().out == FIX_A_FEW_SUMMARY
    trials = _completed_trials(tuner)
    assert len(trials) == 3
    assert {t.values["learning_rate"] for t in trials} == {1e-4}
    assert len({(t.values["units"], t.values["dropout"]) for t in trials}) == 3


def test_override_compile(tmp_path: Path, guide_data: dict[str, np.ndarray]) -> None:
    tuner = keras_tuner.RandomSearch(
        build_model,
        optimizer=keras.optimizers.Adam(1e-3),
        loss="mse",
        metrics=["sparse_categorical_crossentropy"],
        objective="val_loss",
        max_trials=3,
        overwrite=True,
        directory=tmp_path,
        project_name="override_compile",
    )
    with pytest.warns(UserWarning, match="'learning_rate' is tuned but has no effect"):
        _search(tuner, guide_data)

    best = tuner.get_best_models()[0]

    assert best.loss == "mse"
    trials = _completed_trials(tuner)
    assert len(trials) == 3
    for trial in trials:
        assert "val_sparse_categorical_crossentropy" in trial.metrics
        assert trial.optimizer["class_name"] == "Adam"


def test_pre_built_xception(
    tmp_path: Path, guide_data: dict[str, np.ndarray], capsys: Any
) -> None:
    hypermodel = keras_tuner.applications.HyperXception(
        input_shape=(28, 28, 1), classes=10
    )
    hp = keras_tuner.HyperParameters()
    hp.Choice("learning_rate", values=[1e-2, 1e-3, 1e-4])
    tuner = keras_tuner.RandomSearch(
        hypermodel,
        hyperparameters=hp,
        tune_new_entries=False,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        objective="val_accuracy",
        max_trials=3,
        overwrite=True,
        directory=tmp_path,
        project_name="helloworld",
    )
    _search(tuner, guide_data)
    capsys.readouterr()

    tuner.search_space_summary()

    assert capsys.readouterr().out == XCEPTION_SUMMARY
    trials = _completed_trials(tuner)
    assert sorted(t.values["learning_rate"] for t in trials) == [1e-4, 1e-3, 1e-2]
    untuned = [
        {name: value for name, value in t.values.items() if name != "learning_rate"}
        for t in trials
    ]
    assert untuned[0] == untuned[1] == untuned[2]
