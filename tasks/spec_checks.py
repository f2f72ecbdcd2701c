"""Checks that need a whole spec: files, imports, objective and hyperparameters."""

from __future__ import annotations

from pathlib import Path
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
    if path.is_dir():
        return [data_folder_problem("data.path", path, path)]
    return [
        f"data.path: data file not found: {str(path)!r}. Relative paths start from "
        f"the spec's folder ({spec.base_dir}). Fix the path or create the file."
    ]


# How many data files in a folder the error for a folder as data.path suggests.
MAX_SUGGESTED_DATA_FILES = 3


def data_folder_problem(field: str, written: Path, folder: Path) -> str:
    """Describe a data path that names a folder, suggesting data files inside it.

    `written` is the path as the spec gives it, `folder` the folder it names.
    """
    try:
        files = sorted(
            child.name
            for child in folder.iterdir()
            if child.is_file() and child.suffix.lower() in (".npz", ".csv")
        )
    except OSError:
        files = []
    if files:
        names = ", ".join(
            repr(str(written / name)) for name in files[:MAX_SUGGESTED_DATA_FILES]
        )
        more = " and others" if len(files) > MAX_SUGGESTED_DATA_FILES else ""
        fix = f"Set path to one of the data files in it, such as {names}{more}."
    else:
        fix = "Set path to a .npz or .csv file."
    return (
        f"{field}: {str(written)!r} is a folder, but the data must be one file. "
        f"Received: path={str(written)!r}. {fix}"
    )


def _hypermodel_problems(spec: TuningSpec) -> list[str]:
    from tasks.search_space import HypermodelArgumentsError, load_hypermodel

    try:
        load_hypermodel(spec)
    except HypermodelArgumentsError as error:
        return [f"hypermodel_args: {error}"]
    except ValueError as error:
        return [f"hypermodel: {error}"]
    return []


# Metric names that the check treats as one, because Keras accepts either spelling.
_METRIC_ALIASES = {"acc": "accuracy", "ce": "crossentropy"}


def _objective_problems(spec: TuningSpec) -> list[str]:
    from tuner_core import infer_direction
    from tuner_core._objective import closest_known_name

    name = spec.objective.name
    problems = _compile_metric_problems(spec)
    if spec.objective.direction is not None or infer_direction(name) is not None:
        return problems
    known = closest_known_name(name)
    fix = (
        f"Did you mean {known!r}? If not, give the direction"
        if known
        else "Give the direction"
    )
    return problems + [
        f"objective: cannot infer whether to minimize or maximize {name!r}. "
        f"Received: objective={name!r}. {fix}: objective = "
        f"{{name = {name!r}, direction = 'max'}} (or 'min')."
    ]


def _compile_metric_problems(spec: TuningSpec) -> list[str]:
    """Check that [compile] metrics, when given, report the objective.

    The override replaces the model's own metrics, so an objective such as
    'val_accuracy' needs 'accuracy' among them. 'loss' and 'val_loss' are
    always reported.
    """
    metrics = spec.compile.metrics
    if metrics is None:
        return []
    name = spec.objective.name
    metric = name.removeprefix("val_")
    if metric == "loss":
        return []
    reported = {_METRIC_ALIASES.get(m, m) for m in metrics}
    if _METRIC_ALIASES.get(metric, metric) in reported:
        return []
    return [
        f"compile.metrics: the objective {name!r} needs the metric {metric!r}, but "
        f"[compile] metrics replaces the model's metrics with {metrics}. Received: "
        f"metrics={metrics}. Add {metric!r} to [compile] metrics, or set the "
        f"objective to one of {_reported_names(metrics)}."
    ]


def _reported_names(metrics: list[str]) -> list[str]:
    """Return the names a model compiled with `metrics` reports, validation first."""
    return ["val_loss", *(f"val_{m}" for m in metrics), "loss", *metrics]


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


def engine_option_problems(spec: TuningSpec) -> list[str]:
    """Report options that the spec's engine does not use.

    Options are compared with their defaults, not checked for presence, so a
    spec that went through `model_dump` validates again.
    """
    from tasks.spec import DaskSpec

    if spec.engine == "local":
        if spec.dask == DaskSpec():
            return []
        return [
            "dask: applies only to engine = 'dask'. Received: a [dask] table with "
            "engine='local'. Add engine = 'dask' to run the trials on Dask, or "
            "remove the [dask] table."
        ]

    problems = []
    if spec.dask.address is not None and spec.dask.n_workers is not None:
        problems.append(
            "dask.n_workers: sizes the local cluster that the flow starts, so it "
            "does not apply to the cluster at an address. Received: "
            f"n_workers={spec.dask.n_workers} with address={spec.dask.address!r}. "
            "Remove n_workers and size that cluster where it runs, or remove "
            "address to start a local cluster."
        )
    for option in ("worker_processes", "max_trials_per_worker"):
        value = getattr(spec, option)
        if value != type(spec).model_fields[option].default:
            toml_value = str(value).lower() if isinstance(value, bool) else value
            problems.append(
                f"{option}: applies only to engine = 'local', because Dask worker "
                f"processes run the trials with engine = 'dask'. Received: "
                f"{option}={toml_value} with engine='dask'. Remove {option}."
            )
    return problems
