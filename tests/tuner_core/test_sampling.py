"""Spread-out first draws, the rank transform of scores and model-guided Hyperband."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from tuner_core import (
    BayesianOptimizationOracle,
    HyperbandOracle,
    HyperParameters,
    RandomSearchOracle,
    TrialStatus,
)
from tuner_core.oracles._base import Oracle
from tuner_core.oracles._bayesian import normal_scores
from tuner_core.oracles._sampling import configuration_at, sobol_point
from search_spaces import conditional_space, expected_active


def _unit_square() -> HyperParameters:
    hp = HyperParameters()
    hp.Float("x", 0.0, 1.0)
    hp.Float("y", 0.0, 1.0)
    return hp


def _run(oracle: Oracle, num_trials: int) -> list[dict[str, Any]]:
    """Run `num_trials` trials, each scoring the distance of x from 0.7."""
    seen = []
    for _ in range(num_trials):
        trial = oracle.create_trial("t")
        if trial.status == TrialStatus.STOPPED:
            break
        values = trial.hyperparameters.values
        seen.append(values)
        oracle.end_trial(trial, TrialStatus.COMPLETED, score=abs(values["x"] - 0.7))
    return seen


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_search_fills_every_stratum(seed: int) -> None:
    # 16 independent uniform draws land in 16 different sixteenths of a range
    # with probability 16!/16**16, about 1e-6. The first 16 Sobol points do in
    # every dimension.
    oracle = RandomSearchOracle(objective="val_loss", max_trials=16, seed=seed)
    oracle.set_space(_unit_square())
    seen = _run(oracle, 16)
    assert len(seen) == 16
    for name in ("x", "y"):
        strata = {int(values[name] * 16) for values in seen}
        assert strata == set(range(16)), name


def test_bayesian_initial_points_fill_strata() -> None:
    oracle = BayesianOptimizationOracle(
        objective="val_loss", max_trials=8, num_initial_points=8, seed=4
    )
    oracle.set_space(_unit_square())
    seen = _run(oracle, 8)
    for name in ("x", "y"):
        assert {int(values[name] * 8) for values in seen} == set(range(8)), name


def test_sobol_point_depends_on_seed() -> None:
    assert np.array_equal(sobol_point(3, 5, 2), sobol_point(3, 5, 2))
    assert not np.array_equal(sobol_point(3, 5, 2), sobol_point(4, 5, 2))
    assert not np.array_equal(sobol_point(3, 5, 2), sobol_point(3, 6, 2))
    assert sobol_point(3, 0, 0).shape == (1,)


def test_configuration_at_skips_inactive_entries() -> None:
    space = conditional_space()
    # n_dense is the first entry: 0.1 picks 0, under which nothing else is active.
    point = np.array([0.1, 0.9, 0.9, 0.9, 0.9])
    assert configuration_at(space, point) == {"n_dense": 0}
    point[0] = 0.9
    values = configuration_at(space, point)
    assert set(values) == expected_active(values)
    assert values["n_dense"] == 2


@pytest.mark.parametrize(
    "make_oracle",
    [
        lambda: RandomSearchOracle(objective="val_loss", max_trials=40, seed=8),
        lambda: BayesianOptimizationOracle(
            objective="val_loss", max_trials=20, num_initial_points=6, seed=8
        ),
    ],
    ids=["random", "bayesian"],
)
def test_conditional_entries_stay_inactive(make_oracle: Any) -> None:
    oracle = make_oracle()
    oracle.set_space(conditional_space())
    seen = []
    while True:
        trial = oracle.create_trial("t")
        if trial.status == TrialStatus.STOPPED:
            break
        values = trial.hyperparameters.values
        seen.append(values)
        oracle.end_trial(trial, TrialStatus.COMPLETED, score=float(len(values)))
    assert seen
    for values in seen:
        assert set(values) == expected_active(values)
    assert len({json.dumps(sorted(v.items())) for v in seen}) == len(seen)


@pytest.mark.parametrize(
    "make_oracle",
    [
        lambda: RandomSearchOracle(objective="val_loss", max_trials=12, seed=21),
        lambda: BayesianOptimizationOracle(
            objective="val_loss", max_trials=12, num_initial_points=4, seed=21
        ),
        lambda: HyperbandOracle(objective="val_loss", max_epochs=9, seed=21),
    ],
    ids=["random", "bayesian", "hyperband"],
)
def test_resumed_search_draws_same(make_oracle: Any) -> None:
    uninterrupted = make_oracle()
    uninterrupted.set_space(_unit_square())
    expected = _run(uninterrupted, 12)

    first = make_oracle()
    first.set_space(_unit_square())
    before = _run(first, 5)
    state = json.loads(json.dumps(first.get_state()))
    resumed = make_oracle()
    resumed.set_state(state)
    after = _run(resumed, 7)
    assert before + after == expected


def test_normal_scores_keep_order() -> None:
    scores = np.array([0.2, 0.97, 0.95, 0.21, 0.96])
    transformed = normal_scores(scores)
    assert list(np.argsort(transformed)) == list(np.argsort(scores))
    assert abs(transformed.mean()) < 1e-12
    # The gap between the two worst scores is as wide as between the two best.
    assert transformed[3] - transformed[0] == pytest.approx(
        transformed[1] - transformed[4]
    )


def test_normal_scores_ties_and_empty() -> None:
    transformed = normal_scores(np.array([1.0, 3.0, 1.0]))
    assert transformed[0] == transformed[2]
    assert transformed[1] > transformed[0]
    assert normal_scores(np.array([])).shape == (0,)
    assert normal_scores(np.array([5.0])).tolist() == [0.0]


def test_hyperband_model_guides_later_brackets() -> None:
    distances = []
    for seed in range(1, 7):
        hp = HyperParameters()
        hp.Float("x", 0.0, 1.0)
        oracle = HyperbandOracle(
            objective="val_loss", max_epochs=9, factor=3, seed=seed
        )
        oracle.set_space(hp)
        _run(oracle, 40)
        new = [
            t for t in oracle.trials.values() if "tuner/trial_id" not in t.schedule
        ]
        later = [t for t in new if t.schedule["tuner/bracket"] < 2]
        assert len(new) == 17
        assert len(later) == 8
        distances += [abs(t.hyperparameters.values["x"] - 0.7) for t in later]

    # Spread-out draws over [0, 1] lie about 0.25 from 0.7 (the median). Once
    # three trials have finished, the model puts most new ones close to it,
    # and a third of them stay random.
    assert float(np.median(distances)) < 0.05
