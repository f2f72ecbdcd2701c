"""Failed trials: retries, FailedTrialError, and the consecutive-failure limit."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import pytest

import tuner_core
from tuner_core import FailedTrialError, TrialStatus


def _small_model(units: int) -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


class RecordingBuilds:
    """A build function that records the `units` of each build once enabled.

    `fail(units, attempt, build_number)` returns the error to raise for that
    build, or None to build the model. `attempt` counts the builds with these
    units and `build_number` all builds since the search started, from 1.
    """

    def __init__(
        self,
        fail: Callable[[int, int, int], Exception | None],
        units: tuple[int, ...] = (8, 16, 24, 32, 40, 48, 56, 64),
    ) -> None:
        self.fail = fail
        self.units = list(units)
        self.enabled = False
        self.builds: list[int] = []

    def __call__(self, hp: tuner_core.HyperParameters) -> keras.Model:
        units = hp.Choice("units", self.units)
        if self.enabled:
            self.builds.append(units)
            error = self.fail(units, self.builds.count(units), len(self.builds))
            if error is not None:
                raise error
        return _small_model(units)


def _search(
    tuner: tuner_core.Tuner, build: RecordingBuilds, digits: dict[str, np.ndarray]
) -> None:
    build.enabled = True
    tuner.search(
        digits["x"],
        digits["y"],
        epochs=1,
        validation_data=(digits["x_val"], digits["y_val"]),
    )


def _trials_by_units(tuner: tuner_core.Tuner) -> dict[int, tuner_core.Trial]:
    return {t.values["units"]: t for t in tuner.oracle.trials.values()}


def test_failed_trial_error_skips_retries(
    tmp_path: Path, digits: dict[str, np.ndarray]
) -> None:
    def fail(units: int, attempt: int, build_number: int) -> Exception | None:
        if units == 64:
            return FailedTrialError("64 units never fit in memory")
        if units == 32:
            return RuntimeError(f"flaky build, attempt {attempt}")
        return None

    build = RecordingBuilds(fail, units=(16, 32, 64))
    tuner = tuner_core.RandomSearch(
        build,
        objective="val_loss",
        max_trials=3,
        max_retries_per_trial=2,
        seed=1,
        directory=tmp_path,
    )
    _search(tuner, build, digits)

    trials = _trials_by_units(tuner)
    assert build.builds.count(64) == 1
    assert build.builds.count(32) == 3
    assert trials[64].status == TrialStatus.FAILED
    assert trials[64].attempts == 1
    assert trials[64].message == "FailedTrialError: 64 units never fit in memory"
    assert trials[32].status == TrialStatus.FAILED
    assert trials[32].attempts == 3
    assert trials[32].message == "RuntimeError: flaky build, attempt 3"
    assert trials[16].status == TrialStatus.COMPLETED
    assert trials[16].attempts == 1


def test_retry_recovers_flaky_trial(
    tmp_path: Path, digits: dict[str, np.ndarray]
) -> None:
    def fail(units: int, attempt: int, build_number: int) -> Exception | None:
        if build_number == 1:
            return RuntimeError("transient error")
        return None

    build = RecordingBuilds(fail)
    tuner = tuner_core.RandomSearch(
        build,
        objective="val_loss",
        max_trials=2,
        max_retries_per_trial=1,
        seed=2,
        directory=tmp_path,
    )
    _search(tuner, build, digits)

    trial = tuner.oracle.trials["00"]
    assert build.builds[0] == build.builds[1] == trial.values["units"]
    assert trial.status == TrialStatus.COMPLETED
    assert trial.attempts == 2
    assert trial.message is None
    assert trial.score is not None


def test_failed_trials_saved_with_values(
    tmp_path: Path, digits: dict[str, np.ndarray]
) -> None:
    def fail(units: int, attempt: int, build_number: int) -> Exception | None:
        if units not in (32, 64):
            return None
        return ValueError(f"cannot build {units} units")

    build = RecordingBuilds(fail, units=(16, 32, 64))
    tuner = tuner_core.RandomSearch(
        build,
        objective="val_loss",
        max_trials=3,
        seed=3,
        directory=tmp_path,
        project_name="saved",
    )
    _search(tuner, build, digits)

    state = json.loads((tmp_path / "saved" / "oracle.json").read_text())
    failed = {
        t["values"]["units"]: t for t in state["trials"] if t["status"] == "FAILED"
    }
    assert sorted(failed) == [32, 64]
    for units, record in failed.items():
        assert record["message"] == f"ValueError: cannot build {units} units"
        assert record["hyperparameters"]["values"] == {"units": units}
        assert record["score"] is None


def test_consecutive_failures_stop_search(
    tmp_path: Path, digits: dict[str, np.ndarray]
) -> None:
    def fail(units: int, attempt: int, build_number: int) -> Exception | None:
        if build_number <= 2:
            return None
        return ValueError(f"out of memory at units={units}")

    build = RecordingBuilds(fail)
    tuner = tuner_core.RandomSearch(
        build,
        objective="val_loss",
        max_trials=8,
        max_consecutive_failed_trials=3,
        seed=4,
        directory=tmp_path,
    )
    with pytest.raises(RuntimeError) as raised:
        _search(tuner, build, digits)
    build.enabled = False

    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.number)
    statuses = [t.status for t in trials]
    assert statuses == [TrialStatus.COMPLETED] * 2 + [TrialStatus.FAILED] * 3
    message = str(raised.value)
    assert "3 consecutive failed trials" in message
    assert "max_consecutive_failed_trials" in message
    for trial in trials[2:]:
        units = trial.values["units"]
        assert f"trial {trial.trial_id} with {{'units': {units}}}" in message
        assert f"ValueError: out of memory at units={units}" in message
        assert trial.message == f"ValueError: out of memory at units={units}"

    best_trials = tuner.oracle.get_best_trials(5)
    expected = sorted(trials[:2], key=lambda t: t.score)
    assert [t.trial_id for t in best_trials] == [t.trial_id for t in expected]
    models = tuner.get_best_models(2)
    assert len(models) == 2
    best = models[0].evaluate(digits["x_val"], digits["y_val"], verbose=0)
    assert best == pytest.approx(best_trials[0].score, rel=1e-5)


def test_completed_trial_resets_failure_count(
    tmp_path: Path, digits: dict[str, np.ndarray]
) -> None:
    def fail(units: int, attempt: int, build_number: int) -> Exception | None:
        if build_number not in (1, 2, 4, 5):
            return None
        return ValueError("failing build")

    build = RecordingBuilds(fail)
    tuner = tuner_core.RandomSearch(
        build,
        objective="val_loss",
        max_trials=6,
        max_consecutive_failed_trials=3,
        seed=5,
        directory=tmp_path,
    )
    _search(tuner, build, digits)

    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.number)
    statuses = [t.status for t in trials]
    failed, completed = TrialStatus.FAILED, TrialStatus.COMPLETED
    assert statuses == [failed, failed, completed, failed, failed, completed]
