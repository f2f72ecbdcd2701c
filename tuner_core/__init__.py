"""A search-space and tuner library with KerasTuner's API, for Keras 3.

`import tuner_core as keras_tuner` runs code written for KerasTuner. The
library imports neither Prefect nor MLflow; the pipeline wraps it.
"""

from tuner_core import applications, oracles
from tuner_core._bayesian_tuner import BayesianOptimization
from tuner_core._compile import (
    CompileOverrides,
    apply_compile_overrides,
    find_override_conflicts,
)
from tuner_core._conditions import Parent
from tuner_core._deadline import TrialDeadline
from tuner_core._errors import (
    FailedTrialError,
    NewEntryNotAllowedError,
    ObjectiveNotFoundError,
    SearchSpaceChangedError,
    SearchSpaceConflictError,
    TrialTimeoutError,
)
from tuner_core._grid_search_tuner import GridSearch
from tuner_core._hp_types import Boolean, Choice, Fixed, Float, HyperParameter, Int
from tuner_core._hyperband_tuner import Hyperband
from tuner_core._hypermodel import HyperModel, resolve_hypermodel
from tuner_core._hyperparameters import HyperParameters
from tuner_core._objective import Objective, infer_direction, resolve_objective
from tuner_core._search_space import (
    OverrideTypeWarning,
    UnreadHyperparametersWarning,
    build_search_space,
    count_configurations,
    explore_search_space,
    iterate_configurations,
    search_space_differences,
    search_space_summary_text,
)
from tuner_core._training import (
    BestEpochTracker,
    TrialOutcome,
    build_trial_model,
    optimizer_state,
    restore_optimizer_state,
    restore_trial_state,
    run_trial,
)
from tuner_core._trial import Trial, TrialStatus
from tuner_core._tuner import RandomSearch, Tuner
from tuner_core.oracles import (
    BayesianOptimizationOracle,
    GridSearchOracle,
    HyperbandOracle,
    HyperbandTrial,
    Oracle,
    RandomSearchOracle,
)

__all__ = [
    "applications",
    "BayesianOptimization",
    "BayesianOptimizationOracle",
    "BestEpochTracker",
    "Boolean",
    "Choice",
    "CompileOverrides",
    "FailedTrialError",
    "Fixed",
    "Float",
    "GridSearch",
    "GridSearchOracle",
    "HyperModel",
    "HyperParameter",
    "HyperParameters",
    "Hyperband",
    "HyperbandOracle",
    "HyperbandTrial",
    "Int",
    "NewEntryNotAllowedError",
    "Objective",
    "ObjectiveNotFoundError",
    "Oracle",
    "OverrideTypeWarning",
    "Parent",
    "RandomSearch",
    "RandomSearchOracle",
    "SearchSpaceChangedError",
    "SearchSpaceConflictError",
    "Trial",
    "TrialDeadline",
    "TrialOutcome",
    "TrialStatus",
    "TrialTimeoutError",
    "Tuner",
    "UnreadHyperparametersWarning",
    "apply_compile_overrides",
    "build_search_space",
    "build_trial_model",
    "count_configurations",
    "explore_search_space",
    "find_override_conflicts",
    "infer_direction",
    "iterate_configurations",
    "optimizer_state",
    "oracles",
    "resolve_hypermodel",
    "resolve_objective",
    "restore_optimizer_state",
    "restore_trial_state",
    "run_trial",
    "search_space_differences",
    "search_space_summary_text",
]
