"""The `GridSearch` tuner: tries every configuration of the space once."""

from __future__ import annotations

from typing import Any

from tuner_core._hyperparameters import HyperParameters
from tuner_core._tuner import Tuner
from tuner_core.oracles import GridSearchOracle


class GridSearch(Tuner):
    """A tuner whose oracle walks the grid of the search space.

    Args:
        hypermodel: A build function `build_model(hp)` or a `HyperModel`.
        objective: The metric name or `Objective` to optimize.
        max_trials: The maximum number of trials, or None to run the whole
            grid. Defaults to None.
        seed, hyperparameters, tune_new_entries, allow_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: As for
            `GridSearchOracle`.
        **kwargs: `Tuner` arguments such as `directory` and `project_name`.
    """

    def __init__(
        self,
        hypermodel: Any = None,
        objective: Any = None,
        max_trials: int | None = None,
        seed: int | None = None,
        hyperparameters: HyperParameters | None = None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        **kwargs: Any,
    ) -> None:
        oracle = GridSearchOracle(
            objective=objective,
            max_trials=max_trials,
            seed=seed,
            hyperparameters=hyperparameters,
            tune_new_entries=tune_new_entries,
            allow_new_entries=allow_new_entries,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        super().__init__(hypermodel, oracle, seed=seed, **kwargs)
