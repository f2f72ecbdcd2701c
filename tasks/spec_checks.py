"""Checks that need a whole spec: files, imports, objective and hyperparameters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tasks._spec_errors import SpecError

if TYPE_CHECKING:
    from tasks.spec import TuningSpec


def find_spec_problems(spec: TuningSpec) -> list[str]:
    """Return one message per problem found, or an empty list for a sound spec."""
    return [
        *_data_file_problems(spec),
        *_hypermodel_problems(spec),
        *_objective_problems(spec),
        *_hyperparameter_problems(spec),
    ]


def _data_file_problems(spec: TuningSpec) -> list[str]:
    path = spec.data.path
    if path is None or path.is_file():
        return []
    return [
        f"data.path: data file not found: {str(path)!r}. Relative paths start from "
        f"the spec's folder ({spec.base_dir}). Fix the path or create the file."
    ]


def _hypermodel_problems(spec: TuningSpec) -> list[str]:
    from tasks.search_space import HypermodelArgumentsError, load_hypermodel

    try:
        load_hypermodel(spec)
    except HypermodelArgumentsError as error:
        return [f"hypermodel_args: {error}"]
    except ValueError as error:
        return [f"hypermodel: {error}"]
    return []


def _objective_problems(spec: TuningSpec) -> list[str]:
    from tasks.search_space import objective_from_spec

    try:
        objective_from_spec(spec)
    except ValueError as error:
        return [
            f"objective: {error} In the spec, write objective = {{name = "
            f"{spec.objective.name!r}, direction = 'max'}} (or 'min')."
        ]
    return []


def _hyperparameter_problems(spec: TuningSpec) -> list[str]:
    from tasks.search_space import hyperparameters_from_spec

    try:
        hyperparameters_from_spec(spec.hyperparameters)
    except SpecError as error:
        return error.problems
    return []


# Options that only one oracle takes, by the oracle that takes them.
ORACLE_OPTIONS = {
    "bayesian": ("num_initial_points", "alpha", "beta"),
    "hyperband": ("max_epochs", "factor", "hyperband_iterations"),
}


def oracle_option_problems(spec: TuningSpec) -> list[str]:
    """Report oracle options given to another oracle, and resume options alone."""
    problems = []
    for oracle, options in ORACLE_OPTIONS.items():
        if spec.oracle == oracle:
            continue
        for option in options:
            value = getattr(spec, option)
            if value is not None:
                problems.append(
                    f"{option}: applies only to oracle = {oracle!r}. Received: "
                    f"{option}={value!r} with oracle={spec.oracle!r}. Remove "
                    f"{option}, or set oracle = {oracle!r}."
                )
    if spec.project_name is None:
        resume_options = {"overwrite": "true" if spec.overwrite else None}
        if spec.directory is not None:
            resume_options["directory"] = repr(str(spec.directory))
        for option, value in resume_options.items():
            if value is not None:
                problems.append(
                    f"{option}: applies only to a search saved under a project_name. "
                    f"Received: {option}={value} and no project_name. Add "
                    f"project_name = 'my-search' to save and resume the search, or "
                    f"remove {option}."
                )
    return problems
