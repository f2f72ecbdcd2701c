"""Tailoring a hypermodel's search space without touching its code, on real training."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import tuner_core

SEARCH_A_FEW_SUMMARY = """\
Search space summary
Default search space size: 1
learning_rate (Float)
{'default': 0.0001, 'conditions': [], 'min_value': 0.0001, 'max_value': 0.01, 'step': None, 'sampling': 'log'}
"""

FIX_A_FEW_SUMMARY = """\
Search space summary
Default search space size: 3
learning_rate (Fixed)
{'conditions': [], 'value': 0.0001}
units (Int)
{'default': 64, 'conditions': [], 'min_value': 32, 'max_value': 128, 'step': 32, 'sampling': 'linear'}
dropout (Boolean)
{'default': False, 'conditions': []}
"""


def test_search_a_few_tunes_only_given(
    tmp_path: Path, digits: dict[str, np.ndarray], guide_model: Any, capsys: Any
) -> None:
    hp = tuner_core.HyperParameters()
    hp.Float("learning_rate", min_value=1e-4, max_value=1e-2, sampling="log")
    tuner = tuner_core.RandomSearch(
        hypermodel=guide_model,
        hyperparameters=hp,
        tune_new_entries=False,
        objective="val_accuracy",
        max_trials=3,
        seed=7,
        overwrite=True,
        directory=tmp_path,
        project_name="search_a_few",
    )
    tuner.search_space_summary()
    assert capsys.readouterr().out == SEARCH_A_FEW_SUMMARY

    tuner.search(
        digits["x"], digits["y"], epochs=1, validation_data=(digits["x_val"], digits["y_val"])
    )
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 3
    rates = {t.values["learning_rate"] for t in trials}
    assert len(rates) == 3
    for trial in trials:
        assert trial.status == tuner_core.TrialStatus.COMPLETED
        assert 1e-4 <= trial.values["learning_rate"] <= 1e-2
        assert trial.values["units"] == 64
        assert trial.values["dropout"] is False
    assert hp.values == {"learning_rate": 1e-4}, "the user's object must stay untouched"

    # The best values include the untuned ones, as the trial results do, and
    # rebuild the best trial's model.
    best_hp = tuner.get_best_hyperparameters(1)[0]
    best_trial = tuner.oracle.get_best_trials(1)[0]
    assert best_hp.values == best_trial.values
    assert set(best_hp.values) == {"learning_rate", "units", "dropout"}
    model = guide_model(best_hp)
    assert model.layers[1].units == 64


def test_fix_a_few_tunes_the_rest(
    tmp_path: Path, digits: dict[str, np.ndarray], guide_model: Any, capsys: Any
) -> None:
    hp = tuner_core.HyperParameters()
    hp.Fixed("learning_rate", value=1e-4)
    tuner = tuner_core.RandomSearch(
        guide_model,
        hyperparameters=hp,
        tune_new_entries=True,
        objective="val_accuracy",
        max_trials=4,
        seed=3,
        directory=tmp_path,
        project_name="fix_a_few",
    )
    tuner.search_space_summary()
    assert capsys.readouterr().out == FIX_A_FEW_SUMMARY

    tuner.search(
        digits["x"], digits["y"], epochs=1, validation_data=(digits["x_val"], digits["y_val"])
    )
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 4
    assert {t.values["learning_rate"] for t in trials} == {1e-4}
    configurations = {(t.values["units"], t.values["dropout"]) for t in trials}
    assert len(configurations) == 4
    for units, _ in configurations:
        assert units in {32, 64, 96, 128}


def test_compile_override_scenario(
    tmp_path: Path, digits: dict[str, np.ndarray], guide_model: Any
) -> None:
    user_optimizer = keras.optimizers.Adam(1e-3)
    tuner = tuner_core.RandomSearch(
        guide_model,
        optimizer=user_optimizer,
        loss="mse",
        metrics=["sparse_categorical_crossentropy"],
        objective="val_loss",
        max_trials=3,
        seed=1,
        directory=tmp_path,
        project_name="override",
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tuner.search(
            digits["x"],
            digits["y"],
            epochs=2,
            validation_data=(digits["x_val"], digits["y_val"]),
        )
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    rate_warnings = [m for m in messages if "'learning_rate'" in m]
    assert len(rate_warnings) == 1
    assert "optimizer" in rate_warnings[0]
    assert not any("'units'" in m or "'dropout'" in m for m in messages)

    assert int(user_optimizer.iterations.numpy()) == 0
    assert not user_optimizer.built

    best_trial = tuner.oracle.get_best_trials(1)[0]
    assert set(best_trial.metrics) >= {"loss", "val_loss", "val_sparse_categorical_crossentropy"}
    assert "val_accuracy" not in best_trial.metrics

    with warnings.catch_warnings(record=True) as caught_load:
        warnings.simplefilter("always")
        best = tuner.get_best_models(1)[0]
    assert not any("Skipping variable loading" in str(w.message) for w in caught_load)
    assert best.loss == "mse"
    assert isinstance(best.optimizer, keras.optimizers.Adam)
    assert best.optimizer is not user_optimizer
    assert float(best.optimizer.learning_rate.numpy()) == pytest.approx(1e-3)
    result = best.evaluate(digits["x_val"], digits["y_val"], verbose=0, return_dict=True)
    assert result["loss"] == pytest.approx(best_trial.score, rel=1e-5)


def test_get_best_models_reproduces_score(
    tmp_path: Path, digits: dict[str, np.ndarray], guide_model: Any
) -> None:
    tuner = tuner_core.RandomSearch(
        guide_model,
        objective="val_accuracy",
        max_trials=2,
        seed=5,
        directory=tmp_path,
    )
    tuner.search(
        digits["x"], digits["y"], epochs=2, validation_data=(digits["x_val"], digits["y_val"])
    )
    best_hp = tuner.get_best_hyperparameters(1)[0]
    best_trial = tuner.oracle.get_best_trials(1)[0]
    assert best_hp.values == best_trial.values
    model = tuner.get_best_models(1)[0]
    result = model.evaluate(digits["x_val"], digits["y_val"], verbose=0, return_dict=True)
    assert result["accuracy"] == pytest.approx(best_trial.score, abs=1e-6)


def test_allow_new_entries_false_names_entry(tmp_path: Path, guide_model: Any) -> None:
    hp = tuner_core.HyperParameters()
    hp.Float("learning_rate", min_value=1e-4, max_value=1e-2, sampling="log")
    with pytest.raises(ValueError, match=r"'units'.*allow_new_entries=False"):
        tuner_core.RandomSearch(
            guide_model,
            hyperparameters=hp,
            allow_new_entries=False,
            objective="val_accuracy",
            directory=tmp_path,
        )


def test_objective_missing_lists_metrics(
    tmp_path: Path, digits: dict[str, np.ndarray], guide_model: Any
) -> None:
    tuner = tuner_core.RandomSearch(
        guide_model,
        objective=tuner_core.Objective("val_f1", "max"),
        max_trials=3,
        directory=tmp_path,
    )
    with pytest.raises(tuner_core.ObjectiveNotFoundError, match=r"'val_f1'.*'val_accuracy'"):
        tuner.search(
            digits["x"], digits["y"], epochs=2, validation_data=(digits["x_val"], digits["y_val"])
        )
    trials = list(tuner.oracle.trials.values())
    assert len(trials) == 1
    assert trials[0].status == tuner_core.TrialStatus.FAILED


def test_seeded_trials_repeat_scores(
    tmp_path: Path, digits: dict[str, np.ndarray], guide_model: Any
) -> None:
    scores = []
    for run in range(2):
        tuner = tuner_core.RandomSearch(
            guide_model,
            objective="val_loss",
            max_trials=2,
            seed=13,
            directory=tmp_path,
            project_name=f"run{run}",
        )
        tuner.search(
            digits["x"], digits["y"], epochs=1, validation_data=(digits["x_val"], digits["y_val"])
        )
        scores.append([t.score for t in tuner.oracle.trials.values()])
    assert scores[0] == scores[1]


def test_unread_override_warns_with_names(tmp_path: Path, guide_model: Any) -> None:
    hp = tuner_core.HyperParameters()
    hp.Float("learnign_rate", min_value=1e-4, max_value=1e-2, sampling="log")
    with pytest.warns(UserWarning, match=r"\['learnign_rate'\].*'learning_rate'"):
        tuner_core.RandomSearch(
            guide_model,
            hyperparameters=hp,
            objective="val_accuracy",
            directory=tmp_path,
        )
