"""Prefect tasks and the MLflow adapter that wrap tuner_core for the tuning pipeline.

Names load lazily, so importing `tasks.spec` alone does not import Prefect,
MLflow or Keras.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DataRef": "tasks.data",
    "Dataset": "tasks.data",
    "load_dataset": "tasks.data",
    "make_data_ref": "tasks.data",
    "SpecError": "tasks.spec",
    "TuningSpec": "tasks.spec",
    "load_spec": "tasks.spec",
    "parse_spec": "tasks.spec",
    "build_oracle": "tasks.oracles",
    "SearchProject": "tasks.project",
    "SearchSpaceInfo": "tasks.preparation",
    "SpecReport": "tasks.preparation",
    "load_data": "tasks.preparation",
    "prepare_search_space": "tasks.preparation",
    "validate_spec_file": "tasks.preparation",
    "RegisteredModel": "tasks.results",
    "SearchResult": "tasks.results",
    "TrialResult": "tasks.results",
    "rank_trials": "tasks.selection",
    "register_best_model": "tasks.selection",
    "select_best_trial": "tasks.selection",
    "TrialError": "tasks.trial_execution",
    "execute_trial": "tasks.trial_execution",
    "run_trial": "tasks.trial",
    "TrialPlan": "tasks.trial_plan",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'tasks' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)
