"""The Bayesian optimization oracle: no repeats, NaN scores, constants, conditions."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import tuner_core
from tuner_core import BayesianOptimizationOracle, HyperParameters, TrialStatus
from tuner_core.oracles._bayesian import SpaceEncoding
from search_spaces import conditional_space, expected_active


def _small_space() -> HyperParameters:
    hp = HyperParameters()
    hp.Int("units", 32, 128, step=32)
    hp.Boolean("dropout")
    hp.Choice("act", ["relu", "tanh"])
    return hp


def _key(values: dict[str, Any]) -> str:
    return json.dumps(sorted(values.items()))


def _run(
    oracle: BayesianOptimizationOracle,
    score: Callable[[dict[str, Any], int], float],
) -> tuple[list[dict[str, Any]], str | None]:
    seen: list[dict[str, Any]] = []
    while True:
        trial = oracle.create_trial("t")
        if trial.status == TrialStatus.STOPPED:
            return seen, trial.message
        values = trial.hyperparameters.values
        seen.append(values)
        oracle.end_trial(
            trial, TrialStatus.COMPLETED, score=score(values, trial.number)
        )


def _oracle(space: HyperParameters, **kwargs: Any) -> BayesianOptimizationOracle:
    kwargs.setdefault("objective", "val_loss")
    kwargs.setdefault("seed", 5)
    oracle = BayesianOptimizationOracle(**kwargs)
    oracle.set_space(space)
    return oracle


def _units_score(values: dict[str, Any], number: int) -> float:
    return abs(values["units"] - 96) / 32 + (0.5 if values["dropout"] else 0.0)


@pytest.mark.parametrize("direction", ["min", "max"])
def test_no_repeats_until_exhausted(direction: str) -> None:
    objective = tuner_core.Objective("score", direction)
    oracle = _oracle(
        _small_space(), objective=objective, max_trials=30, num_initial_points=3
    )
    seen, message = _run(oracle, _units_score)
    assert len(seen) == 16
    assert len({_key(v) for v in seen}) == 16
    assert message == "search space exhausted after 16 unique configurations"


def test_nan_scores_left_out() -> None:
    hp = HyperParameters()
    hp.Float("lr", 1e-4, 1e-1, sampling="log")
    hp.Int("units", 16, 64, step=16)

    def score(values: dict[str, Any], number: int) -> float:
        if number % 3 == 0:
            return math.nan
        return (math.log10(values["lr"]) + 2.5) ** 2 + values["units"] / 64

    oracle = _oracle(hp, max_trials=15, num_initial_points=3)
    seen, message = _run(oracle, score)
    assert len(seen) == 15
    assert message == "reached max_trials=15"
    assert len({_key(v) for v in seen}) == 15
    assert math.isnan(oracle.get_best_trials(15)[-1].score)


def test_all_nan_scores_keep_running() -> None:
    oracle = _oracle(_small_space(), max_trials=8, num_initial_points=2)
    seen, message = _run(oracle, lambda values, number: math.nan)
    assert len(seen) == 8
    assert len({_key(v) for v in seen}) == 8
    assert message == "reached max_trials=8"


def test_failed_trials_not_proposed_again() -> None:
    oracle = _oracle(_small_space(), max_trials=16, num_initial_points=2)
    keys = set()
    for number in range(16):
        trial = oracle.create_trial("t")
        keys.add(_key(trial.hyperparameters.values))
        if number % 2:
            oracle.end_trial(trial, TrialStatus.FAILED, message="out of memory")
        else:
            oracle.end_trial(trial, TrialStatus.COMPLETED, score=float(number))
    assert len(keys) == 16


def test_constant_ranges_stay_fixed() -> None:
    hp = HyperParameters()
    hp.Int("k", 5, 5)
    hp.Fixed("optimizer", "adam")
    hp.Float("c", 1.0, 1.0)
    hp.Float("x", 0.0, 1.0)
    oracle = _oracle(hp, max_trials=8, num_initial_points=2)
    seen, _ = _run(oracle, lambda values, number: (values["x"] - 0.3) ** 2)
    assert len(seen) == 8
    for values in seen:
        assert values["k"] == 5
        assert values["optimizer"] == "adam"
        assert values["c"] == 1.0
    assert SpaceEncoding(hp).num_dimensions == 1


def test_only_constants_one_trial() -> None:
    hp = HyperParameters()
    hp.Int("k", 5, 5)
    hp.Fixed("name", "a")
    seen, message = _run(_oracle(hp, max_trials=5), lambda values, number: 1.0)
    assert seen == [{"k": 5, "name": "a"}]
    assert message == "search space exhausted after 1 unique configurations"


def test_constant_scores_survive() -> None:
    oracle = _oracle(_small_space(), max_trials=10, num_initial_points=2)
    seen, _ = _run(oracle, lambda values, number: 0.5)
    assert len({_key(v) for v in seen}) == 10


def test_pending_trials_get_distinct_configurations() -> None:
    hp = HyperParameters()
    hp.Float("x", 0.0, 1.0)
    hp.Float("y", 0.0, 1.0)
    oracle = _oracle(hp, max_trials=20, num_initial_points=3)
    for _ in range(3):
        trial = oracle.create_trial("t")
        values = trial.hyperparameters.values
        oracle.end_trial(trial, TrialStatus.COMPLETED, score=values["x"] + values["y"])
    pending = [oracle.create_trial("t") for _ in range(4)]
    points = [
        (t.hyperparameters.values["x"], t.hyperparameters.values["y"]) for t in pending
    ]
    assert len(set(points)) == 4
    distances = [
        max(abs(a[0] - b[0]), abs(a[1] - b[1]))
        for i, a in enumerate(points)
        for b in points[i + 1 :]
    ]
    assert min(distances) > 1e-3


def test_conditional_active_sets() -> None:
    oracle = _oracle(conditional_space(), max_trials=30, num_initial_points=5)

    def score(values: dict[str, Any], number: int) -> float:
        return abs(values.get("u1", 0) - 64) / 64 + values.get("rate", 0.0)

    seen, _ = _run(oracle, score)
    assert len(seen) == 30
    assert len({_key(v) for v in seen}) == 30
    for values in seen:
        assert set(values) == expected_active(values)
        assert values.get("u1", 16) in range(16, 129, 16)
        assert values.get("u2", 16) in range(16, 65, 16)
        if "rate" in values:
            assert repr(values["rate"]) in {"0.1", "0.2", "0.3", "0.4", "0.5"}


def test_finds_minimum_of_quadratic() -> None:
    hp = HyperParameters()
    hp.Float("x", 0.0, 1.0)
    oracle = _oracle(hp, max_trials=12, num_initial_points=3, seed=11)
    _run(oracle, lambda values, number: (values["x"] - 0.3) ** 2)
    best = oracle.get_best_trials(1)[0]
    assert abs(best.hyperparameters.values["x"] - 0.3) < 0.05


def test_maximize_prefers_high_scores() -> None:
    hp = HyperParameters()
    hp.Int("n", 0, 40)
    oracle = _oracle(hp, objective="val_accuracy", max_trials=10, num_initial_points=3)
    _run(oracle, lambda values, number: -abs(values["n"] - 30) / 40)
    best = oracle.get_best_trials(1)[0]
    assert abs(best.hyperparameters.values["n"] - 30) <= 3


def test_state_round_trip_keeps_trials() -> None:
    first = _oracle(_small_space(), max_trials=16, num_initial_points=2)
    done = []
    for _ in range(5):
        trial = first.create_trial("t")
        done.append(_key(trial.hyperparameters.values))
        first.end_trial(
            trial,
            TrialStatus.COMPLETED,
            score=_units_score(trial.hyperparameters.values, 0),
        )
    state = json.loads(json.dumps(first.get_state()))
    assert state["num_initial_points"] == 2

    resumed = _oracle(_small_space(), max_trials=20, num_initial_points=4, beta=1.0)
    resumed.set_state(state)
    assert resumed.num_initial_points == 4
    assert resumed.beta == 1.0
    seen, message = _run(resumed, _units_score)
    assert len(done) + len(seen) == 16
    assert not set(done) & {_key(v) for v in seen}
    assert message == "search space exhausted after 16 unique configurations"


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"num_initial_points": 0}, r"num_initial_points must be an integer >= 1.*=0"),
        ({"num_initial_points": 2.5}, r"num_initial_points=2\.5"),
        ({"alpha": 0.0}, r"alpha must be > 0.*alpha=0\.0"),
        ({"beta": -1.0}, r"beta must be >= 0.*beta=-1\.0"),
    ],
)
def test_bad_arguments_rejected(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        BayesianOptimizationOracle(objective="val_loss", **kwargs)


def test_bayesian_tuner_arguments(tmp_path: Any, guide_model: Any) -> None:
    tuner = tuner_core.BayesianOptimization(
        hypermodel=guide_model,
        objective="val_accuracy",
        max_trials=7,
        num_initial_points=2,
        alpha=1e-3,
        beta=3.0,
        seed=3,
        directory=tmp_path,
        project_name="bayes",
    )
    oracle = tuner.oracle
    assert isinstance(oracle, BayesianOptimizationOracle)
    assert (oracle.max_trials, oracle.num_initial_points) == (7, 2)
    assert (oracle.alpha, oracle.beta) == (1e-3, 3.0)


def test_failed_fit_falls_back_to_random(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_fit(*args: Any) -> Any:
        raise np.linalg.LinAlgError("matrix is not positive definite")

    oracle = _oracle(_small_space(), max_trials=6, num_initial_points=2)
    monkeypatch.setattr(oracle, "_fit", broken_fit)
    seen, message = _run(oracle, _units_score)
    assert len({_key(v) for v in seen}) == 6
    assert message == "reached max_trials=6"
    assert "fitting the Gaussian process failed" in caplog.text
    assert "not positive definite" in caplog.text
