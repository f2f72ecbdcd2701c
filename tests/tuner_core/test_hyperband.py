"""Hyperband: the bracket schedule, continued trials, resume, and one real search."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import tuner_core
from tuner_core import HyperbandOracle, HyperbandTrial, HyperParameters, TrialStatus
from tuner_core._tuner import load_arrays
from tuner_core.oracles import BracketSchedule
from search_spaces import conditional_space, expected_active

SCHEDULE_KEYS = {"tuner/epochs", "tuner/initial_epoch", "tuner/bracket", "tuner/round"}


def _units_space() -> HyperParameters:
    hp = HyperParameters()
    hp.Int("units", 2, 200)
    return hp


def _oracle(space: HyperParameters, **kwargs: Any) -> HyperbandOracle:
    kwargs.setdefault("objective", "val_loss")
    kwargs.setdefault("seed", 2)
    oracle = HyperbandOracle(**kwargs)
    oracle.set_space(space)
    return oracle


def _score(trial: HyperbandTrial) -> float:
    """A loss that falls with units and with epochs trained."""
    values = trial.hyperparameters.values
    return 1 / values.get("units", 1) + 1 / trial.schedule["tuner/epochs"]


def _run(
    oracle: HyperbandOracle, limit: int | None = None
) -> tuple[list[HyperbandTrial], str]:
    trials: list[HyperbandTrial] = []
    while limit is None or len(trials) < limit:
        trial = oracle.create_trial("t")
        if trial.status == TrialStatus.STOPPED:
            return trials, trial.message or ""
        assert isinstance(trial, HyperbandTrial)
        trials.append(trial)
        oracle.end_trial(trial, TrialStatus.COMPLETED, score=_score(trial))
    return trials, ""


def _structure(trials: list[HyperbandTrial]) -> list[tuple[int, int, int, int]]:
    return [
        (
            t.schedule["tuner/bracket"],
            t.schedule["tuner/round"],
            t.schedule["tuner/initial_epoch"],
            t.schedule["tuner/epochs"],
        )
        for t in trials
    ]


@pytest.mark.parametrize(
    ("max_epochs", "factor"),
    [(100, 3), (81, 3), (9, 3), (3, 3), (1, 3), (10, 2), (50, 4)],
)
def test_schedule_budgets_within_max_epochs(max_epochs: int, factor: int) -> None:
    schedule = BracketSchedule(max_epochs, factor)
    assert schedule.num_brackets == int(math.log(max_epochs, factor) + 1e-9) + 1
    for bracket in range(schedule.num_brackets):
        last = bracket
        assert schedule.epochs(bracket, last) == max_epochs
        for round_number in range(bracket + 1):
            assert 1 <= schedule.epochs(bracket, round_number) <= max_epochs
            assert schedule.num_trials(bracket, round_number) >= 1
        for round_number in range(1, bracket + 1):
            before = schedule.num_trials(bracket, round_number - 1)
            assert schedule.num_trials(bracket, round_number) <= before
            assert schedule.epochs(bracket, round_number) > schedule.epochs(
                bracket, round_number - 1
            )


def test_schedule_matches_keras_tuner_sizes() -> None:
    # Trials and epochs per round observed from KerasTuner 1.4.8 with
    # max_epochs=9 and factor=3.
    schedule = BracketSchedule(9, 3)
    table = {
        bracket: [
            (schedule.num_trials(bracket, r), schedule.epochs(bracket, r))
            for r in range(bracket + 1)
        ]
        for bracket in range(schedule.num_brackets)
    }
    assert table == {2: [(9, 1), (3, 3), (1, 9)], 1: [(5, 3), (2, 9)], 0: [(3, 9)]}


def test_oracle_runs_bracket_structure() -> None:
    trials, message = _run(_oracle(_units_space(), max_epochs=9, factor=3))
    expected = (
        [(2, 0, 0, 1)] * 9
        + [(2, 1, 1, 3)] * 3
        + [(2, 2, 3, 9)]
        + [(1, 0, 0, 3)] * 5
        + [(1, 1, 3, 9)] * 2
        + [(0, 0, 0, 9)] * 3
    )
    assert _structure(trials) == expected
    assert message == "finished all 3 Hyperband brackets"


def test_continued_trials_are_best_of_round() -> None:
    oracle = _oracle(_units_space(), max_epochs=9, factor=3)
    trials, _ = _run(oracle)
    by_id = {t.trial_id: t for t in trials}
    for trial in trials:
        schedule = trial.schedule
        if schedule["tuner/round"] == 0:
            assert "tuner/trial_id" not in schedule
            continue
        parent = by_id[schedule["tuner/trial_id"]]
        assert parent.schedule["tuner/bracket"] == schedule["tuner/bracket"]
        assert parent.schedule["tuner/round"] == schedule["tuner/round"] - 1
        assert parent.schedule["tuner/epochs"] == schedule["tuner/initial_epoch"]
        assert parent.hyperparameters.values == trial.hyperparameters.values

    first_round = [t for t in trials[:9]]
    best_three = sorted(first_round, key=lambda t: t.score)[:3]
    continued = {t.schedule["tuner/trial_id"] for t in trials[9:12]}
    assert continued == {t.trial_id for t in best_three}


def test_schedule_kept_out_of_values() -> None:
    trials, _ = _run(_oracle(_units_space(), max_epochs=9, factor=3))
    for trial in trials:
        assert set(trial.hyperparameters.values) == {"units"}
        assert set(trial.values) == {"units"}
        assert SCHEDULE_KEYS <= set(trial.schedule)
    new_configurations = [t for t in trials if t.schedule["tuner/round"] == 0]
    keys = {json.dumps(t.hyperparameters.values) for t in new_configurations}
    assert len(keys) == len(new_configurations)


def test_two_iterations_repeat_brackets() -> None:
    trials, message = _run(
        _oracle(_units_space(), max_epochs=9, factor=3, hyperband_iterations=2)
    )
    assert len(trials) == 46
    assert _structure(trials[:23]) == _structure(trials[23:])
    assert message == "finished all 6 Hyperband brackets"


def test_small_space_exhausts() -> None:
    hp = HyperParameters()
    hp.Choice("act", ["relu", "tanh"])
    hp.Boolean("dropout")
    trials, message = _run(_oracle(hp, max_epochs=9, factor=3))
    assert [s[:2] for s in _structure(trials)] == [(2, 0)] * 4 + [(2, 1)] * 3 + [(2, 2)]
    assert message == "search space exhausted after 4 unique configurations"


def test_failed_and_nan_never_continued() -> None:
    oracle = _oracle(_units_space(), max_epochs=9, factor=3)
    bad = set()
    trials = []
    while True:
        trial = oracle.create_trial("t")
        if trial.status == TrialStatus.STOPPED:
            break
        trials.append(trial)
        if trial.number in (0, 1, 2):
            bad.add(trial.trial_id)
            oracle.end_trial(trial, TrialStatus.FAILED, message="out of memory")
        elif trial.number in (3, 4, 5):
            bad.add(trial.trial_id)
            oracle.end_trial(trial, TrialStatus.COMPLETED, score=math.nan)
        else:
            oracle.end_trial(trial, TrialStatus.COMPLETED, score=_score(trial))
    parents = {t.schedule.get("tuner/trial_id") for t in trials} - {None}
    assert not parents & bad
    assert len(trials) == 23


def test_all_failed_round_closes() -> None:
    hp = HyperParameters()
    hp.Int("units", 2, 200)
    oracle = _oracle(hp, max_epochs=3, factor=3)
    trials = []
    while True:
        trial = oracle.create_trial("t")
        if trial.status == TrialStatus.STOPPED:
            break
        trials.append(trial)
        oracle.end_trial(trial, TrialStatus.FAILED, message="broken")
    # Bracket 1 runs its three first-round trials and has none to continue.
    # Bracket 0 runs its two trials.
    assert _structure(trials) == [(1, 0, 0, 1)] * 3 + [(0, 0, 0, 3)] * 2


def test_conditional_active_sets() -> None:
    oracle = _oracle(conditional_space(), max_epochs=9, factor=3)
    trials, _ = _run(oracle)
    assert len(trials) == 23
    for trial in trials:
        values = trial.hyperparameters.values
        assert set(values) == expected_active(values)
        assert values.get("u1", 16) in range(16, 129, 16)
        if "rate" in values:
            assert repr(values["rate"]) in {"0.1", "0.2", "0.3", "0.4", "0.5"}


def test_resume_reruns_interrupted_slot() -> None:
    complete, _ = _run(_oracle(_units_space(), max_epochs=9, factor=3))

    first = _oracle(_units_space(), max_epochs=9, factor=3)
    done, _ = _run(first, limit=10)
    interrupted = first.create_trial("t")
    state = json.loads(json.dumps(first.get_state()))

    resumed = _oracle(_units_space(), max_epochs=9, factor=3)
    resumed.set_state(state)
    assert all(isinstance(t, HyperbandTrial) for t in resumed.trials.values())
    assert resumed.trials["00"].schedule == done[0].schedule
    del resumed.trials[interrupted.trial_id]
    rest, message = _run(resumed)

    assert rest[0].schedule == interrupted.schedule
    assert rest[0].hyperparameters.values == interrupted.hyperparameters.values
    assert _structure(done + rest) == _structure(complete)
    assert message == "finished all 3 Hyperband brackets"


def test_resume_rejects_changed_max_epochs() -> None:
    first = _oracle(_units_space(), max_epochs=9, factor=3)
    _run(first, limit=2)
    state = first.get_state()
    other = _oracle(_units_space(), max_epochs=27, factor=3)
    with pytest.raises(ValueError, match=r"max_epochs=9 and factor=3.*max_epochs=27"):
        other.set_state(state)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"max_epochs": 0}, r"max_epochs must be an integer >= 1.*max_epochs=0"),
        ({"max_epochs": 2.5}, r"max_epochs=2\.5"),
        ({"factor": 1}, r"factor must be an integer >= 2.*factor=1"),
        ({"hyperband_iterations": 0}, r"hyperband_iterations=0.*or None"),
    ],
)
def test_bad_arguments_rejected(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        HyperbandOracle(objective="val_loss", **kwargs)


class _FitRecorder(keras.callbacks.Callback):
    """Records each fit's epoch range and the weights and optimizer state it starts from."""

    def __init__(self) -> None:
        super().__init__()
        self.fits: list[dict[str, Any]] = []

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.fits.append({"epochs": self.params["epochs"], "trained": []})
        self.fits[-1]["start_weights"] = (
            self.model.get_weights() if self.model.built else None
        )
        optimizer = self.model.optimizer
        self.fits[-1]["start_optimizer"] = (
            [v.numpy() for v in optimizer.variables] if optimizer.built else None
        )

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.fits[-1]["trained"].append(epoch)


def test_hyperband_search_trains_budgets(
    tmp_path: Path, digits: dict[str, np.ndarray], guide_model: Any
) -> None:
    tuner = tuner_core.Hyperband(
        hypermodel=guide_model,
        objective="val_accuracy",
        max_epochs=3,
        factor=3,
        seed=4,
        directory=tmp_path,
        project_name="hyperband",
    )
    recorder = _FitRecorder()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tuner.search(
            digits["x"][:200],
            digits["y"][:200],
            epochs=50,
            validation_data=(digits["x_val"], digits["y_val"]),
            callbacks=[recorder],
        )
    ignored = [
        w for w in caught if "Hyperband ignores search(epochs=50)" in str(w.message)
    ]
    assert len(ignored) == 1
    assert "max_epochs=3" in str(ignored[0].message)

    trials = list(tuner.oracle.trials.values())
    assert (
        _structure(trials) == [(1, 0, 0, 1)] * 3 + [(1, 1, 1, 3)] + [(0, 0, 0, 3)] * 2
    )
    assert all(t.status == TrialStatus.COMPLETED for t in trials)
    assert len(recorder.fits) == len(trials)
    for trial, fit in zip(trials, recorder.fits, strict=True):
        initial, budget = (
            trial.schedule["tuner/initial_epoch"],
            trial.schedule["tuner/epochs"],
        )
        assert fit["epochs"] == budget
        assert fit["trained"] == list(range(initial, budget))
        assert len(trial.metrics["val_accuracy"]) == budget - initial
        assert initial <= trial.best_step < budget

    continued = trials[3]
    parent_id = continued.schedule["tuner/trial_id"]
    parent_dir = tmp_path / "hyperband" / f"trial_{parent_id}"
    parent_weights = load_arrays(parent_dir / "weights.npz")
    start_weights = recorder.fits[3]["start_weights"]
    assert start_weights is not None
    assert len(start_weights) == len(parent_weights)
    for started, saved_array in zip(start_weights, parent_weights, strict=True):
        np.testing.assert_array_equal(started, saved_array)

    # The optimizer goes on from the parent's best epoch too: its iteration
    # count and Adam's moments, not a fresh start.
    parent_optimizer = load_arrays(parent_dir / "optimizer.npz")
    start_optimizer = recorder.fits[3]["start_optimizer"]
    assert start_optimizer is not None
    assert int(start_optimizer[0]) == int(parent_optimizer[0]) > 0
    assert len(start_optimizer) == len(parent_optimizer)
    for started, saved_array in zip(start_optimizer, parent_optimizer, strict=True):
        np.testing.assert_array_equal(started, saved_array)


def test_waiting_for_running_trials() -> None:
    oracle = _oracle(_units_space(), max_epochs=3, factor=3)
    running = [oracle.create_trial("t") for _ in range(5)]
    assert [t.status for t in running] == [TrialStatus.RUNNING] * 5
    waiting = oracle.create_trial("t")
    assert waiting.status == TrialStatus.STOPPED
    assert waiting.message == "no trial can start until the running trials finish"

    for trial in running[:3]:
        oracle.end_trial(trial, TrialStatus.COMPLETED, score=_score(trial))
    continued = oracle.create_trial("t")
    assert continued.status == TrialStatus.RUNNING
    assert continued.schedule["tuner/round"] == 1
    best = min(running[:3], key=lambda t: t.score)
    assert continued.schedule["tuner/trial_id"] == best.trial_id


class _InterruptAtFit(keras.callbacks.Callback):
    """Raises KeyboardInterrupt when fit number `fit_number` begins, as a kill would."""

    def __init__(self, fit_number: int) -> None:
        super().__init__()
        self.fit_number = fit_number
        self.fits = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.fits += 1
        if self.fits == self.fit_number:
            raise KeyboardInterrupt


def test_hyperband_search_resumes(
    tmp_path: Path, digits: dict[str, np.ndarray], guide_model: Any
) -> None:
    arguments = {
        "hypermodel": guide_model,
        "objective": "val_accuracy",
        "max_epochs": 3,
        "factor": 3,
        "seed": 4,
        "directory": tmp_path,
        "project_name": "resumed",
    }
    data = (digits["x"][:200], digits["y"][:200])
    validation = (digits["x_val"], digits["y_val"])
    with pytest.raises(KeyboardInterrupt):
        tuner_core.Hyperband(**arguments).search(
            *data, validation_data=validation, callbacks=[_InterruptAtFit(4)]
        )

    tuner = tuner_core.Hyperband(**arguments)
    finished = [t for t in tuner.oracle.trials.values() if t.status.is_finished()]
    assert len(finished) == 3
    recorder = _FitRecorder()
    tuner.search(*data, validation_data=validation, callbacks=[recorder])
    trials = list(tuner.oracle.trials.values())
    assert (
        _structure(trials) == [(1, 0, 0, 1)] * 3 + [(1, 1, 1, 3)] + [(0, 0, 0, 3)] * 2
    )
    assert len(recorder.fits) == 3
    assert recorder.fits[0]["trained"] == [1, 2]
    assert recorder.fits[0]["start_weights"] is not None
