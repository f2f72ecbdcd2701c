"""HyperModel.fit overrides: hyperparameters declared in fit join the search space."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import tuner_core
from tuner_core import TrialStatus


class BatchSizeHyperModel(tuner_core.HyperModel):
    """Tunes `units` in build and `batch_size` in fit, recording each batch size."""

    def __init__(self) -> None:
        super().__init__(name="batch_size_model")
        self.batch_sizes: list[int] = []

    def build(self, hp: tuner_core.HyperParameters) -> keras.Model:
        model = keras.Sequential(
            [
                keras.Input((8, 8, 1)),
                keras.layers.Flatten(),
                keras.layers.Dense(hp.Choice("units", [8, 16]), activation="relu"),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return model

    def fit(
        self, hp: tuner_core.HyperParameters, model: Any, *args: Any, **kwargs: Any
    ) -> Any:
        batch_size = hp.Choice("batch_size", [16, 32])
        self.batch_sizes.append(batch_size)
        return model.fit(*args, batch_size=batch_size, **kwargs)


def _tuner(tmp_path: Path, hypermodel: Any, **kwargs: Any) -> Any:
    arguments: dict[str, Any] = {
        "objective": "val_loss",
        "max_trials": 4,
        "seed": 3,
        "directory": tmp_path,
        "project_name": "fit_search",
        **kwargs,
    }
    return tuner_core.RandomSearch(hypermodel, **arguments)


def _search(tuner: Any, digits: dict[str, np.ndarray]) -> None:
    tuner.search(
        digits["x"],
        digits["y"],
        epochs=1,
        validation_data=(digits["x_val"], digits["y_val"]),
    )


def _sorted_trials(tuner: Any) -> list[tuner_core.Trial]:
    return sorted(tuner.oracle.trials.values(), key=lambda t: t.number)


def test_fit_batch_size_is_tuned(tmp_path: Path, digits: dict[str, np.ndarray]) -> None:
    hypermodel = BatchSizeHyperModel()
    tuner = _tuner(tmp_path, hypermodel)
    assert tuner.oracle.space.names() == ["units"]

    _search(tuner, digits)

    assert tuner.oracle.space.names() == ["units", "batch_size"]
    trials = _sorted_trials(tuner)
    assert all(t.status == TrialStatus.COMPLETED for t in trials)
    # The trial that first meets `batch_size` uses its default.
    assert trials[0].values["batch_size"] == 16
    assert hypermodel.batch_sizes == [t.values["batch_size"] for t in trials]
    for trial in trials:
        assert trial.hyperparameters.values == trial.values
    configurations = {(t.values["units"], t.values["batch_size"]) for t in trials}
    assert configurations == {(8, 16), (8, 32), (16, 16), (16, 32)}


def test_fit_batch_size_survives_resume(
    tmp_path: Path, digits: dict[str, np.ndarray]
) -> None:
    _search(_tuner(tmp_path, BatchSizeHyperModel(), max_trials=2), digits)

    hypermodel = BatchSizeHyperModel()
    tuner = _tuner(tmp_path, hypermodel)
    assert tuner.oracle.space.names() == ["units", "batch_size"]
    _search(tuner, digits)

    trials = _sorted_trials(tuner)
    assert len(trials) == 4
    assert hypermodel.batch_sizes == [t.values["batch_size"] for t in trials[2:]]
    configurations = {(t.values["units"], t.values["batch_size"]) for t in trials}
    assert len(configurations) == 4


def test_fit_entries_untuned_keep_default(
    tmp_path: Path, digits: dict[str, np.ndarray]
) -> None:
    hp = tuner_core.HyperParameters()
    hp.Choice("units", [8, 16])
    hypermodel = BatchSizeHyperModel()
    tuner = _tuner(
        tmp_path, hypermodel, hyperparameters=hp, tune_new_entries=False, max_trials=2
    )

    _search(tuner, digits)

    assert tuner.oracle.space.names() == ["units"]
    assert hypermodel.batch_sizes == [16, 16]
    for trial in _sorted_trials(tuner):
        assert trial.values["batch_size"] == 16


def test_fit_entries_rejected_without_new_entries(
    tmp_path: Path, digits: dict[str, np.ndarray]
) -> None:
    hp = tuner_core.HyperParameters()
    hp.Choice("units", [8, 16])
    tuner = _tuner(
        tmp_path,
        BatchSizeHyperModel(),
        hyperparameters=hp,
        allow_new_entries=False,
        max_trials=2,
        max_consecutive_failed_trials=2,
    )

    with pytest.raises(RuntimeError, match=r"'batch_size'.*allow_new_entries=False"):
        _search(tuner, digits)

    assert all(t.status == TrialStatus.FAILED for t in _sorted_trials(tuner))
