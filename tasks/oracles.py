"""Building the spec's oracle, with KerasTuner's option names."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tasks.spec_checks import ORACLE_OPTIONS
from tuner_core import HyperParameters, Objective
from tuner_core.oracles import (
    BayesianOptimizationOracle,
    BracketSchedule,
    GridSearchOracle,
    HyperbandOracle,
    Oracle,
    RandomSearchOracle,
)

if TYPE_CHECKING:
    from tasks.spec import TuningSpec

ORACLE_CLASSES: dict[str, type[Oracle]] = {
    "random": RandomSearchOracle,
    "grid": GridSearchOracle,
    "bayesian": BayesianOptimizationOracle,
    "hyperband": HyperbandOracle,
}

# KerasTuner's defaults, used when the spec leaves an option out.
DEFAULT_MAX_EPOCHS = 100
DEFAULT_FACTOR = 3
DEFAULT_HYPERBAND_ITERATIONS = 1


def oracle_options(spec: TuningSpec) -> dict[str, Any]:
    """Return the options of the spec's oracle that the spec sets."""
    names = ORACLE_OPTIONS.get(spec.oracle, ())
    options = {name: getattr(spec, name) for name in names}
    return {name: value for name, value in options.items() if value is not None}


def build_oracle(
    spec: TuningSpec, objective: Objective, space: HyperParameters
) -> Oracle:
    """Return a new oracle of the spec's kind over `space`.

    Hyperband takes no `max_trials` in KerasTuner. Here a spec's `max_trials`
    caps its schedule.
    """
    arguments: dict[str, Any] = {
        "objective": objective,
        "seed": spec.seed,
        "hyperparameters": space,
        "max_retries_per_trial": spec.max_retries_per_trial,
        "max_consecutive_failed_trials": spec.max_consecutive_failed_trials,
        **oracle_options(spec),
    }
    if spec.oracle != "hyperband":
        arguments["max_trials"] = spec.max_trials
    oracle = ORACLE_CLASSES[spec.oracle](**arguments)
    if spec.oracle == "hyperband":
        oracle.max_trials = spec.max_trials
    return oracle


def planned_num_trials(spec: TuningSpec) -> int | None:
    """Return the most trials the search runs, or None if the search space decides.

    Grid search without `max_trials` runs as many trials as its grid has
    configurations, a count that needs the built search space. Hyperband runs
    fewer than its schedule when trials fail or the search space runs out.
    """
    if spec.oracle != "hyperband":
        return spec.max_trials

    schedule = BracketSchedule(
        spec.max_epochs or DEFAULT_MAX_EPOCHS, spec.factor or DEFAULT_FACTOR
    )
    per_iteration = sum(
        schedule.num_trials(bracket, round_number)
        for bracket in range(schedule.num_brackets)
        for round_number in range(bracket + 1)
    )
    iterations = spec.hyperband_iterations or DEFAULT_HYPERBAND_ITERATIONS
    total = per_iteration * iterations
    return total if spec.max_trials is None else min(total, spec.max_trials)
