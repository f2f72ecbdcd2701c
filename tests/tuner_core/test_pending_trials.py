"""Oracles never hand out a configuration that a running trial already has."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tuner_core import (
    BayesianOptimizationOracle,
    GridSearchOracle,
    HyperParameters,
    Oracle,
    RandomSearchOracle,
    Trial,
    TrialStatus,
)

# 4 x 2 x 2 = 16 configurations.
SPACE_SIZE = 16


def small_space() -> HyperParameters:
    hp = HyperParameters()
    hp.Int("units", 32, 128, step=32)
    hp.Boolean("dropout")
    hp.Choice("activation", ["relu", "tanh"])
    return hp


def make_oracle(kind: str, seed: int) -> Oracle:
    oracles: dict[str, Any] = {
        "random": lambda: RandomSearchOracle(
            objective="val_loss", max_trials=40, seed=seed
        ),
        "bayesian": lambda: BayesianOptimizationOracle(
            objective="val_loss", max_trials=40, num_initial_points=2, seed=seed
        ),
        "grid": lambda: GridSearchOracle(
            objective="val_loss", max_trials=40, seed=seed
        ),
    }
    oracle = oracles[kind]()
    oracle.set_space(small_space())
    return oracle


def key(trial: Trial) -> str:
    return json.dumps(sorted(trial.hyperparameters.values.items()))


def score(trial: Trial) -> float:
    values = trial.hyperparameters.values
    return abs(values["units"] - 96) / 32 + (0.5 if values["dropout"] else 0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ["random", "bayesian", "grid"])
def test_concurrent_trials_never_share_configuration(kind: str, seed: int) -> None:
    oracle = make_oracle(kind, seed)
    running: list[Trial] = []
    handed_out: list[str] = []

    # Keep 3 trials running, as a search with concurrency = 3 does. Finish the
    # oldest, then request the next, until the small space runs out.
    while True:
        trial = oracle.create_trial("t")
        if trial.status == TrialStatus.STOPPED:
            break
        assert key(trial) not in {key(other) for other in running}
        handed_out.append(key(trial))
        running.append(trial)
        if len(running) == 3:
            oldest = running.pop(0)
            oracle.end_trial(oldest, TrialStatus.COMPLETED, score=score(oldest))

    assert len(handed_out) == SPACE_SIZE
    assert len(set(handed_out)) == SPACE_SIZE
    exhausted = f"search space exhausted after {SPACE_SIZE} unique configurations"
    assert trial.message == exhausted


@pytest.mark.parametrize("kind", ["random", "bayesian"])
def test_all_pending_cover_space_once(kind: str) -> None:
    oracle = make_oracle(kind, seed=4)
    finished = [oracle.create_trial("t") for _ in range(3)]
    for trial in finished:
        oracle.end_trial(trial, TrialStatus.COMPLETED, score=score(trial))

    pending = [oracle.create_trial("t") for _ in range(SPACE_SIZE - 3)]

    keys = [key(trial) for trial in finished + pending]
    assert len(set(keys)) == SPACE_SIZE
    assert all(trial.status == TrialStatus.RUNNING for trial in pending)
    assert oracle.create_trial("t").status == TrialStatus.STOPPED
