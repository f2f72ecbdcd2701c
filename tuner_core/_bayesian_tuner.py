"""The `BayesianOptimization` tuner: a Gaussian process chooses each trial."""

from __future__ import annotations

from typing import Any

from tuner_core._hyperparameters import HyperParameters
from tuner_core._tuner import Tuner
from tuner_core.oracles import BayesianOptimizationOracle


class BayesianOptimization(Tuner):
    """A tuner whose oracle models the objective with a Gaussian process.

    Args:
        hypermodel: A build function `build_model(hp)` or a `HyperModel`.
        objective: The metric name or `Objective` to optimize.
        max_trials: The maximum number of trials. Defaults to 10.
        num_initial_points: Random trials before the first model, or None for
            three times the number of varying hyperparameters (at least 3).
        alpha: The noise variance added to the kernel's diagonal. Defaults to
            1e-4.
        beta: The weight of the standard deviation in the confidence bound.
            Defaults to 2.6.
        seed, hyperparameters, tune_new_entries, allow_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: As for
            `BayesianOptimizationOracle`.
        **kwargs: `Tuner` arguments such as `directory` and `project_name`.
    """

    def __init__(
        self,
        hypermodel: Any = None,
        objective: Any = None,
        max_trials: int = 10,
        num_initial_points: int | None = None,
        alpha: float = 1e-4,
        beta: float = 2.6,
        seed: int | None = None,
        hyperparameters: HyperParameters | None = None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        **kwargs: Any,
    ) -> None:
        oracle = BayesianOptimizationOracle(
            objective=objective,
            max_trials=max_trials,
            num_initial_points=num_initial_points,
            alpha=alpha,
            beta=beta,
            seed=seed,
            hyperparameters=hyperparameters,
            tune_new_entries=tune_new_entries,
            allow_new_entries=allow_new_entries,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        super().__init__(hypermodel, oracle, seed=seed, **kwargs)
