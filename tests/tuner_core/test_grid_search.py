"""The grid search oracle: order, exhaustion, resume, conditions, unstepped floats."""

from __future__ import annotations

import itertools
import json
from typing import Any

import tuner_core
from tuner_core import GridSearchOracle, HyperParameters, TrialStatus
from tuner_core.oracles._grid_search import grid_values_of
from search_spaces import conditional_space, expected_active


def _small_space() -> HyperParameters:
    hp = HyperParameters()
    hp.Int("units", 32, 128, step=32, default=64)
    hp.Boolean("dropout")
    hp.Choice("act", ["relu", "tanh"])
    return hp


def _small_grid() -> list[dict[str, Any]]:
    """Return the expected grid order: defaults first, the last entry fastest."""
    return [
        {"units": units, "dropout": dropout, "act": act}
        for units, dropout, act in itertools.product(
            [64, 32, 96, 128], [False, True], ["relu", "tanh"]
        )
    ]


def _oracle(space: HyperParameters, max_trials: int | None = None) -> GridSearchOracle:
    oracle = GridSearchOracle(objective="val_loss", max_trials=max_trials, seed=1)
    oracle.set_space(space)
    return oracle


def _run(
    oracle: GridSearchOracle, limit: int | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    seen: list[dict[str, Any]] = []
    while limit is None or len(seen) < limit:
        trial = oracle.create_trial("t")
        if trial.status == TrialStatus.STOPPED:
            return seen, trial.message
        seen.append(trial.hyperparameters.values)
        oracle.end_trial(trial, TrialStatus.COMPLETED, score=float(len(seen)))
    return seen, None


def test_grid_order_defaults_first() -> None:
    seen, _ = _run(_oracle(_small_space()))
    assert seen == _small_grid()


def test_grid_exhaustion_message() -> None:
    seen, message = _run(_oracle(_small_space()))
    assert len(seen) == 16
    assert message == "search space exhausted after 16 unique configurations"


def test_grid_max_trials_stops() -> None:
    seen, message = _run(_oracle(_small_space(), max_trials=3))
    assert seen == _small_grid()[:3]
    assert message == "reached max_trials=3"


def test_grid_resume_continues_after_state() -> None:
    first = _oracle(_small_space())
    done, _ = _run(first, limit=5)
    state = json.loads(json.dumps(first.get_state()))

    resumed = _oracle(_small_space())
    resumed.set_state(state)
    rest, message = _run(resumed)
    assert done + rest == _small_grid()
    assert message == "search space exhausted after 16 unique configurations"


def test_grid_resume_reruns_removed_trial() -> None:
    first = _oracle(_small_space())
    _run(first, limit=4)
    interrupted = first.create_trial("t")
    state = json.loads(json.dumps(first.get_state()))

    resumed = _oracle(_small_space())
    resumed.set_state(state)
    del resumed.trials[interrupted.trial_id]
    rerun = resumed.create_trial("t")
    assert rerun.hyperparameters.values == interrupted.hyperparameters.values
    assert rerun.hyperparameters.values == _small_grid()[4]


def test_grid_skips_pending_trials() -> None:
    oracle = _oracle(_small_space())
    pending = [oracle.create_trial("t") for _ in range(5)]
    assert [t.hyperparameters.values for t in pending] == _small_grid()[:5]


def test_grid_restarts_after_removed_trial() -> None:
    oracle = _oracle(_small_space())
    trials = [oracle.create_trial("t") for _ in range(3)]
    del oracle.trials[trials[2].trial_id]
    again = oracle.create_trial("t")
    assert again.hyperparameters.values == _small_grid()[2]


def test_grid_conditional_active_sets() -> None:
    seen, message = _run(_oracle(conditional_space()))
    assert len(seen) == tuner_core.count_configurations(conditional_space())
    assert message == "search space exhausted after 241 unique configurations"
    assert len({json.dumps(sorted(v.items())) for v in seen}) == 241
    for values in seen:
        assert set(values) == expected_active(values)
        assert values.get("u1", 16) in range(16, 129, 16)
        assert values.get("u2", 16) in range(16, 65, 16)
        if "rate" in values:
            assert values["rate"] in {0.1, 0.2, 0.3, 0.4, 0.5}
            assert repr(values["rate"]) in {"0.1", "0.2", "0.3", "0.4", "0.5"}


def test_grid_conditional_first_trials() -> None:
    seen, _ = _run(_oracle(conditional_space()), limit=3)
    assert seen[0] == {"n_dense": 0}
    assert seen[1] == {"n_dense": 1, "u1": 16, "use_do": False}
    assert seen[2] == {"n_dense": 1, "u1": 16, "use_do": True, "rate": 0.1}


def test_unstepped_float_ten_midpoints() -> None:
    hp = HyperParameters()
    hp.Float("lr", 1e-4, 1e-1, sampling="log")
    values = grid_values_of(hp.space[0])
    assert values[0] == 1e-4
    assert len(values) == 11
    assert values[1:] == sorted(values[1:])
    assert all(1e-4 < v < 1e-1 for v in values[1:])
    # The midpoint of the first of 10 log-spaced bins: 1e-4 * 1000 ** 0.05.
    assert values[1] == tuner_core._hp_types.clean_float(1e-4 * 1000**0.05)


def test_unstepped_float_grid_runs() -> None:
    hp = HyperParameters()
    hp.Float("rate", 0.0, 1.0, default=0.5)
    seen, message = _run(_oracle(hp))
    rates = [v["rate"] for v in seen]
    assert rates[0] == 0.5
    assert rates[1:] == [0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95]
    assert message == "search space exhausted after 11 unique configurations"


def test_off_grid_default_snaps() -> None:
    hp = HyperParameters()
    hp.Int("units", 32, 128, step=32, default=70)
    assert grid_values_of(hp.space[0]) == [64, 32, 96, 128]


def test_grid_search_tuner_arguments(tmp_path: Any, guide_model: Any) -> None:
    tuner = tuner_core.GridSearch(
        hypermodel=guide_model,
        objective="val_accuracy",
        seed=3,
        max_retries_per_trial=1,
        directory=tmp_path,
        project_name="grid",
    )
    assert isinstance(tuner.oracle, GridSearchOracle)
    assert tuner.oracle.max_trials is None
    assert tuner.oracle.max_retries_per_trial == 1
    assert tuner.oracle.space_size() == 4 * 2 * 3


def test_grid_restarts_after_new_entry() -> None:
    oracle = _oracle(_small_space())
    first = oracle.create_trial("t")
    oracle.end_trial(first, TrialStatus.COMPLETED, score=1.0)

    # A tuner adds an entry first declared during a trial, as HyperModel.fit may.
    learned = HyperParameters()
    learned.Choice("batch_size", [32, 64])
    oracle.space.merge(learned.space)
    first.hyperparameters.merge(learned.space)
    first.hyperparameters.set_values({**first.hyperparameters.values, "batch_size": 32})

    seen, message = _run(oracle)
    assert seen[0] == {**_small_grid()[0], "batch_size": 64}
    assert len(seen) == 31
    assert message == "search space exhausted after 32 unique configurations"
