"""The random search oracle: seeding, no duplicates, exhaustion, conditions."""

from __future__ import annotations

from typing import Any

import pytest

import tuner_core
from tuner_core import HyperParameters, RandomSearchOracle, TrialStatus
from search_spaces import conditional_space


def _run_all(oracle: RandomSearchOracle) -> tuple[list[dict[str, Any]], str | None]:
    seen = []
    while True:
        trial = oracle.create_trial("t")
        if trial.status == TrialStatus.STOPPED:
            return seen, trial.message
        seen.append(trial.hyperparameters.values)
        oracle.end_trial(trial, TrialStatus.COMPLETED, score=float(len(seen)))


def test_small_space_exhausts_with_count() -> None:
    hp = HyperParameters()
    hp.Boolean("dropout")
    hp.Choice("act", ["relu", "tanh"])
    oracle = RandomSearchOracle(objective="val_loss", max_trials=10, seed=1)
    oracle.set_space(hp)
    seen, message = _run_all(oracle)
    assert len(seen) == 4
    assert len({tuple(sorted(v.items())) for v in seen}) == 4
    assert message == "search space exhausted after 4 unique configurations"


def test_same_seed_same_draws() -> None:
    runs = []
    for _ in range(2):
        oracle = RandomSearchOracle(objective="val_loss", max_trials=6, seed=11)
        oracle.set_space(conditional_space())
        runs.append(_run_all(oracle)[0])
    assert runs[0] == runs[1]


def test_conditional_trials_record_active_set() -> None:
    oracle = RandomSearchOracle(objective="val_loss", max_trials=60, seed=4)
    oracle.set_space(conditional_space())
    seen, _ = _run_all(oracle)
    assert len(seen) == 60
    for values in seen:
        expected = {"n_dense"}
        if values["n_dense"] >= 1:
            expected |= {"u1", "use_do"}
            if values["use_do"]:
                expected.add("rate")
        if values["n_dense"] == 2:
            expected.add("u2")
        assert set(values) == expected
        if "rate" in values:
            assert values["rate"] in {0.1, 0.2, 0.3, 0.4, 0.5}


def test_conditional_space_size() -> None:
    # n_dense=0: 1; n_dense=1: 8 * (1 + 5) = 48; n_dense=2: 48 * 4 = 192.
    assert tuner_core.count_configurations(conditional_space()) == 241


def test_max_trials_stops_search() -> None:
    hp = HyperParameters()
    hp.Float("lr", 1e-4, 1e-1, sampling="log")
    oracle = RandomSearchOracle(objective="val_loss", max_trials=3, seed=2)
    oracle.set_space(hp)
    seen, message = _run_all(oracle)
    assert len(seen) == 3
    assert message == "reached max_trials=3"


def test_best_trials_rank_nan_last() -> None:
    hp = HyperParameters()
    hp.Int("x", 0, 9)
    oracle = RandomSearchOracle(objective="val_accuracy", max_trials=3, seed=2)
    oracle.set_space(hp)
    scores = [float("nan"), 0.5, 0.9]
    for score in scores:
        trial = oracle.create_trial("t")
        oracle.end_trial(trial, TrialStatus.COMPLETED, score=score)
    best = [t.score for t in oracle.get_best_trials(3)]
    assert best[:2] == [0.9, 0.5]
    assert best[2] != best[2]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_never_repeats_pending(seed: int) -> None:
    hp = HyperParameters()
    hp.Int("units", 32, 128, step=32)
    hp.Boolean("dropout")
    oracle = RandomSearchOracle(objective="val_loss", max_trials=20, seed=seed)
    oracle.set_space(hp)
    pending = [oracle.create_trial("t") for _ in range(8)]
    keys = {tuple(sorted(t.hyperparameters.values.items())) for t in pending}
    assert len(keys) == 8
    assert oracle.create_trial("t").status == TrialStatus.STOPPED
