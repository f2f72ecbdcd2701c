"""The summary that `tuneflow validate` prints for a valid spec.

It gives the search settings one line each, then the search space as a table.
The search logs its search space in KerasTuner's text format instead
(`tuner_core.search_space_summary_text`), as the `search_space.txt` artifact.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

import tuner_core
from tasks.oracles import DEFAULT_MAX_EPOCHS, oracle_options, planned_num_trials
from tasks.preparation import SpecReport
from tasks.search_space import (
    cached_search_space,
    hyperparameters_from_spec,
    objective_from_spec,
)
from tasks.spec import TuningSpec
from tuner_core import Fixed, Float, HyperParameter, HyperParameters, Int

__all__ = ["print_spec_summary", "search_space_table"]


def print_spec_summary(console: Console, report: SpecReport, tracking_uri: str) -> None:
    """Print the search settings, one line each, then the search space table."""
    spec = report.spec
    objective = objective_from_spec(spec)
    console.print(f"Objective: {escape(objective.name)} ({objective.direction})")
    console.print(f"Oracle: {escape(describe_oracle(spec))}")
    console.print(f"Training: {describe_training(spec)}")
    console.print(f"Engine: {escape(describe_engine(spec))}")
    console.print(
        f"MLflow tracking URI: {escape(tracking_uri)}, experiment "
        f"{escape(repr(spec.mlflow.experiment))}"
    )

    space = HyperParameters.from_config(report.search_space["config"])
    untuned = untuned_entries(spec)
    console.print(search_space_table(space, untuned))
    overridden = report.search_space["overridden"]
    if overridden:
        described = ", ".join(
            f"{name} ([compile] {' and '.join(keys)})"
            for name, keys in overridden.items()
        )
        warning = (
            "Tuned without effect, because the spec's [compile] table replaces "
            f"what they feed: {described}."
        )
        console.print(f"[yellow]{escape(warning)}[/yellow]")
    if untuned:
        console.print(
            "Not tuned: tune_new_entries = false keeps the hyperparameters that "
            "the build function declares beyond the spec's list at their defaults "
            "in every trial."
        )


def describe_oracle(spec: TuningSpec) -> str:
    """Describe the oracle, the options the spec sets and the number of trials."""
    options = ", ".join(
        f"{name} = {value!r}" for name, value in oracle_options(spec).items()
    )
    oracle = f"{spec.oracle} ({options})" if options else spec.oracle
    planned = planned_num_trials(spec)
    if planned is None:
        return f"{oracle}, one trial per configuration of the grid"
    return f"{oracle}, up to {_count(planned, 'trial')}"


def describe_training(spec: TuningSpec) -> str:
    """Describe the epochs, batch size, executions and time limit of each trial."""
    if spec.oracle == "hyperband":
        max_epochs = spec.max_epochs or DEFAULT_MAX_EPOCHS
        parts = [f"epochs set by Hyperband's schedule, up to {max_epochs} per trial"]
    else:
        parts = [f"{_count(spec.fit.epochs, 'epoch')} per trial"]
    parts.append(f"batch size {spec.fit.batch_size}")
    if spec.executions_per_trial > 1:
        parts.append(f"{_count(spec.executions_per_trial, 'model')} per trial")
    if spec.trial_timeout_seconds is not None:
        parts.append(f"time limit {spec.trial_timeout_seconds:g} s per trial")
    return ", ".join(parts)


def describe_engine(spec: TuningSpec) -> str:
    """Describe where trials run, and how many at a time."""
    at_once = f"{_count(spec.concurrency, 'trial')} at a time"
    if spec.engine == "dask":
        if spec.dask.address is not None:
            return f"dask, {at_once}, on the scheduler at {spec.dask.address}"
        num_workers = spec.dask.n_workers or spec.concurrency
        workers = _count(num_workers, "worker process", "worker processes")
        return f"dask, {at_once}, on a local cluster of {workers}"
    if spec.uses_worker_processes():
        return f"local, {at_once}, in worker processes"
    return f"local, {at_once}, in the command's process"


def untuned_entries(spec: TuningSpec) -> list[HyperParameter]:
    """Return what the build function declares but, by the spec, does not tune.

    With tune_new_entries = false, these keep their defaults in every trial.
    Finding them builds the model once more for each branch of its conditional
    scopes, as the search space check did.
    """
    if spec.tune_new_entries:
        return []
    hypermodel, _ = cached_search_space(spec)
    explored = tuner_core.explore_search_space(
        hypermodel,
        hyperparameters_from_spec(spec.hyperparameters),
        tune_new_entries=False,
        allow_new_entries=spec.allow_new_entries,
    )
    return explored.untuned


def search_space_table(
    space: HyperParameters, untuned: list[HyperParameter] | None = None
) -> Table:
    """Return a table of the hyperparameters: type, values, sampling and default.

    The search column shows whether a trial samples the entry ("tuned"), or it
    is a Fixed entry, or one of `untuned`, listed last ("not tuned"). An
    "active when" column lists the parent values that make an entry active,
    when some entry has conditions. The title counts the tuned entries and
    their configurations, when finite.
    """
    untuned = untuned or []
    title = f"Search space: {_count(len(space.space), 'hyperparameter')}"
    num_configurations = tuner_core.count_configurations(space)
    if num_configurations is not None:
        title += f", {_count(num_configurations, 'configuration')}"
    rows = [
        (entry, "fixed" if isinstance(entry, Fixed) else "tuned")
        for entry in space.space
    ]
    rows.extend((entry, "not tuned") for entry in untuned)
    has_conditions = any(entry.conditions for entry, _ in rows)

    table = Table(title=title)
    for column in ("name", "type", "range or values", "sampling", "default", "search"):
        table.add_column(column)
    if has_conditions:
        table.add_column("active when")
    for entry, search in rows:
        cells = [
            entry.name,
            type(entry).__name__,
            format_values(entry),
            getattr(entry, "sampling", None) or "",
            repr(entry.default),
            search,
        ]
        if has_conditions:
            cells.append(format_conditions(entry))
        table.add_row(*(escape(cell) for cell in cells))
    return table


def format_values(entry: HyperParameter) -> str:
    """Return a range with its step, or the list of values an entry can take."""
    if not isinstance(entry, (Int, Float)):
        return ", ".join(repr(value) for value in entry.grid_values() or [])
    text = f"{entry.min_value!r} to {entry.max_value!r}"
    return text if entry.step is None else f"{text}, step {entry.step!r}"


def format_conditions(entry: HyperParameter) -> str:
    """Return the parent values that make an entry active, e.g. "units in [32, 64]"."""
    parts = []
    for condition in entry.conditions:
        if len(condition.values) == 1:
            parts.append(f"{condition.name} = {condition.values[0]!r}")
        else:
            parts.append(f"{condition.name} in {condition.values!r}")
    return " and ".join(parts)


def _count(number: int, singular: str, plural: str | None = None) -> str:
    """Return e.g. "1 trial" or "3 trials"."""
    noun = singular if number == 1 else (plural or f"{singular}s")
    return f"{number} {noun}"
