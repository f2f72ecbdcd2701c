"""NaN objectives rank after finite ones, and all-NaN searches keep their trials."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import tuner_core

# The metric value of each `level`. Level 0 makes the objective NaN.
LEVEL_VALUES = {0: math.nan, 1: 0.25, 2: 0.5}


def build_level_model(hp: tuner_core.HyperParameters) -> keras.Model:
    """Build a model whose `level` metric is a constant chosen by `hp`."""
    value = LEVEL_VALUES[hp.Choice("level", [0, 1, 2])]

    def level(y_true: Any, y_pred: Any) -> Any:
        return keras.ops.mean(y_pred, axis=-1) * 0.0 + value

    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer="adam", loss="sparse_categorical_crossentropy", metrics=[level]
    )
    return model


def build_nan_loss_model(hp: tuner_core.HyperParameters) -> keras.Model:
    """Build a model whose loss is NaN at every step."""
    units = hp.Choice("units", [4, 8, 16])

    def nan_loss(y_true: Any, y_pred: Any) -> Any:
        return keras.ops.mean(y_pred, axis=-1) * math.nan

    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss=nan_loss)
    return model


def _search(
    build: Any, objective: Any, tmp_path: Path, digits: dict[str, np.ndarray]
) -> tuner_core.Tuner:
    tuner = tuner_core.RandomSearch(
        build, objective=objective, max_trials=3, seed=1, directory=tmp_path
    )
    tuner.search(
        digits["x"],
        digits["y"],
        epochs=1,
        validation_data=(digits["x_val"], digits["y_val"]),
    )
    return tuner


def _summary_trial_ids(tuner: tuner_core.Tuner, capsys: Any) -> list[str]:
    capsys.readouterr()
    tuner.results_summary()
    return re.findall(r"^Trial (\S+) summary$", capsys.readouterr().out, re.MULTILINE)


@pytest.mark.parametrize(
    ("direction", "expected_levels"), [("min", [1, 2, 0]), ("max", [2, 1, 0])]
)
def test_nan_ranks_last(
    direction: str,
    expected_levels: list[int],
    tmp_path: Path,
    digits: dict[str, np.ndarray],
    capsys: Any,
) -> None:
    objective = tuner_core.Objective("val_level", direction)
    tuner = _search(build_level_model, objective, tmp_path, digits)

    best_trials = tuner.oracle.get_best_trials(3)
    assert [t.values["level"] for t in best_trials] == expected_levels
    assert best_trials[0].score == LEVEL_VALUES[expected_levels[0]]
    assert math.isnan(best_trials[2].score)

    assert _summary_trial_ids(tuner, capsys) == [t.trial_id for t in best_trials]

    models = tuner.get_best_models(3)
    results = [
        model.evaluate(digits["x_val"], digits["y_val"], verbose=0, return_dict=True)
        for model in models
    ]
    expected_values = [LEVEL_VALUES[level] for level in expected_levels[:2]]
    assert [r["level"] for r in results[:2]] == expected_values
    assert math.isnan(results[2]["level"])


def test_nan_ranks_before_failed(
    tmp_path: Path, digits: dict[str, np.ndarray], capsys: Any
) -> None:
    def build(hp: tuner_core.HyperParameters) -> keras.Model:
        model = build_level_model(hp)
        if hp.get("level") == 2:
            raise tuner_core.FailedTrialError("level 2 is not supported")
        return model

    objective = tuner_core.Objective("val_level", "max")
    tuner = tuner_core.RandomSearch(
        build, objective=objective, max_trials=3, seed=1, directory=tmp_path
    )
    tuner.search(
        digits["x"],
        digits["y"],
        epochs=1,
        validation_data=(digits["x_val"], digits["y_val"]),
    )

    by_level = {t.values["level"]: t for t in tuner.oracle.trials.values()}
    assert by_level[2].status == tuner_core.TrialStatus.FAILED
    expected = [by_level[1].trial_id, by_level[0].trial_id, by_level[2].trial_id]
    assert _summary_trial_ids(tuner, capsys) == expected
    assert [t.trial_id for t in tuner.oracle.get_best_trials(3)] == expected[:2]


@pytest.mark.parametrize("direction", ["min", "max"])
def test_all_nan_search_keeps_trials(
    direction: str, tmp_path: Path, digits: dict[str, np.ndarray], capsys: Any
) -> None:
    objective = tuner_core.Objective("val_loss", direction)
    tuner = _search(build_nan_loss_model, objective, tmp_path, digits)

    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.number)
    assert len(trials) == 3
    for trial in trials:
        assert trial.status == tuner_core.TrialStatus.COMPLETED
        assert math.isnan(trial.score)

    best_trials = tuner.oracle.get_best_trials(3)
    assert [t.trial_id for t in best_trials] == [t.trial_id for t in trials]
    assert _summary_trial_ids(tuner, capsys) == [t.trial_id for t in trials]
    tuner.results_summary(1)
    assert "Score: nan" in capsys.readouterr().out
    assert len(tuner.get_best_models(3)) == 3
    assert len(tuner.get_best_hyperparameters(3)) == 3
