"""Building tuner_core objects from a spec: hypermodel, search space and objective."""

from __future__ import annotations

import difflib
import threading
import warnings
from typing import TYPE_CHECKING, Any

import tuner_core
from tasks._spec_errors import SpecError
from tasks.imports import import_object
from tasks.tailoring_errors import (
    new_entry_problem,
    override_kind_problems,
    override_type_problems,
    unknown_parent_problem,
)
from tuner_core import (
    CompileOverrides,
    HyperModel,
    HyperParameters,
    NewEntryNotAllowedError,
    Objective,
    OverrideTypeWarning,
    SearchSpaceConflictError,
    UnreadHyperparametersWarning,
)

if TYPE_CHECKING:
    from tasks.spec import HyperparameterSpec, TuningSpec

_cache_lock = threading.Lock()
_search_spaces: dict[str, tuple[HyperModel, HyperParameters]] = {}


class HypermodelArgumentsError(ValueError):
    """Error for `hypermodel_args` that the spec's hypermodel cannot take."""


def load_hypermodel(spec: TuningSpec) -> HyperModel:
    """Import the spec's build function or HyperModel and wrap it as a HyperModel.

    A HyperModel class is constructed with the spec's `hypermodel_args`.

    Raises:
        HypermodelArgumentsError: the arguments are given for a build function
            or an instance, or the class rejects them.
        ValueError: the import path cannot be imported.
    """
    target = import_object(spec.hypermodel, spec.base_dir)
    is_class = isinstance(target, type) and issubclass(target, HyperModel)
    arguments = dict(spec.hypermodel_args)
    if not is_class:
        if arguments:
            raise HypermodelArgumentsError(
                f"{spec.hypermodel!r} is not a HyperModel class, so it takes no "
                f"constructor arguments. Received: hypermodel_args={arguments!r}. "
                "Remove [hypermodel_args], or name a HyperModel subclass such as "
                "'tuner_core.applications:HyperXception'."
            )
        return tuner_core.resolve_hypermodel(target)

    try:
        return target(**arguments)
    except (TypeError, ValueError) as error:
        reason = str(error).rstrip()
        if not reason.endswith("."):
            reason += "."
        raise HypermodelArgumentsError(
            f"constructing {target.__name__} failed: {reason} Received: "
            f"hypermodel_args={arguments!r}. Give its constructor arguments in a "
            "[hypermodel_args] table, e.g. input_shape = [28, 28, 1] and "
            "classes = 10."
        ) from error


def hyperparameters_from_spec(entries: list[HyperparameterSpec]) -> HyperParameters:
    """Declare the `[[hyperparameters]]` entries on a new `HyperParameters`.

    Raises:
        SpecError: a name is declared twice, a parent_name names no entry
            above, or tuner_core rejects an entry (bounds, step, sampling,
            choice values, defaults).
    """
    problems = _duplicate_name_problems(entries)
    if problems:
        raise SpecError(problems)

    hyperparameters = HyperParameters()
    for index, entry in enumerate(entries):
        if entry.parent_name is not None and entry.parent_name not in hyperparameters:
            problems.append(unknown_parent_problem(index, entry, hyperparameters))
            continue
        declare = getattr(hyperparameters, entry.type)
        try:
            declare(**entry.arguments())
        except ValueError as error:
            problems.append(f"hyperparameters[{index}]: {error}")
    if problems:
        raise SpecError(problems)
    return hyperparameters


def _duplicate_name_problems(entries: list[HyperparameterSpec]) -> list[str]:
    """Report names declared twice, unless both entries sit in conditional scopes."""
    problems: list[str] = []
    first_index: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if entry.name not in first_index:
            first_index[entry.name] = index
            continue
        first = entries[first_index[entry.name]]
        if first.parent_name is not None and entry.parent_name is not None:
            continue
        if "Fixed" in (first.type, entry.type) and first.type != entry.type:
            fix = "Keep the Fixed entry to pin the value, or the other one to tune it."
            problem = "is both fixed and tuned"
        else:
            fix = "Remove one of the two entries, or rename one."
            problem = "is declared twice"
        problems.append(
            f"hyperparameters[{index}]: the name {entry.name!r} {problem} "
            f"(hyperparameters[{first_index[entry.name]}] has type {first.type!r}, "
            f"this entry {entry.type!r}). Received: name={entry.name!r}. {fix}"
        )
    return problems


def objective_from_spec(spec: TuningSpec) -> Objective:
    """Return the spec's objective, inferring the direction when none is given."""
    if spec.objective.direction is not None:
        return Objective(spec.objective.name, spec.objective.direction)
    return tuner_core.resolve_objective(spec.objective.name)


def compile_overrides_from_spec(spec: TuningSpec) -> CompileOverrides | None:
    """Return the `[compile]` overrides, or None when the spec overrides nothing."""
    if spec.compile.is_empty():
        return None
    optimizer: Any = spec.compile.optimizer
    if optimizer is not None and not isinstance(optimizer, str):
        optimizer = {
            "class_name": optimizer.class_name,
            "config": dict(optimizer.config),
        }
    metrics = list(spec.compile.metrics) if spec.compile.metrics is not None else None
    return CompileOverrides(
        optimizer=optimizer, loss=spec.compile.loss, metrics=metrics
    )


def build_search_space(spec: TuningSpec) -> tuple[HyperModel, HyperParameters]:
    """Build the tuned search space: the spec's entries tailor the hypermodel's own.

    The hypermodel is built once per branch of its conditional scopes, so every
    problem with the search space surfaces here, before any trial.

    Raises:
        SpecError: the entries conflict with the hypermodel, a new name appears
            while `allow_new_entries` is false, or building the model fails
            (named by entry when an entry's type differs from the model's).
    """
    hypermodel = load_hypermodel(spec)
    hyperparameters = hyperparameters_from_spec(spec.hyperparameters)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnreadHyperparametersWarning)
            warnings.simplefilter("always", OverrideTypeWarning)
            space = tuner_core.build_search_space(
                hypermodel,
                hyperparameters,
                tune_new_entries=spec.tune_new_entries,
                allow_new_entries=spec.allow_new_entries,
            )
    except NewEntryNotAllowedError as error:
        raise SpecError([new_entry_problem(error.name)]) from error
    except Exception as error:
        problems = []
        if not isinstance(error, SearchSpaceConflictError):
            problems = override_type_problems(spec, hypermodel, hyperparameters, error)
        if problems:
            raise SpecError(problems) from error
        if isinstance(error, ValueError):
            raise SpecError([f"hyperparameters: {error}"]) from error
        raise SpecError(
            [
                f"hypermodel: building the model of {spec.hypermodel!r} failed with "
                f"{type(error).__name__}: {error}. Fix the build function, or the "
                "[[hyperparameters]] entries whose values it cannot take."
            ]
        ) from error
    for record in caught:
        if isinstance(record.message, UnreadHyperparametersWarning):
            _check_unread_entries(spec, hypermodel, record.message)
        elif isinstance(record.message, OverrideTypeWarning):
            problems = override_kind_problems(spec, record.message)
            if problems:
                raise SpecError(problems)
        else:
            warnings.warn_explicit(
                record.message, record.category, record.filename, record.lineno
            )
    return hypermodel, space


def _check_unread_entries(
    spec: TuningSpec, hypermodel: HyperModel, warning: UnreadHyperparametersWarning
) -> None:
    """Raise SpecError for an entry whose name is a misspelling of a declared one.

    Only a build function's names are known before the search: a HyperModel
    with its own `fit` may read other names there, so its entries only warn.
    """
    problems = []
    if type(hypermodel).fit is tuner_core.HyperModel.fit:
        names = [entry.name for entry in spec.hyperparameters]
        for name in warning.unread:
            close = difflib.get_close_matches(name, warning.declared, n=1, cutoff=0.8)
            if close:
                problems.append(
                    f"hyperparameters[{names.index(name)}].name: the build function "
                    f"declares no hyperparameter {name!r}, so this entry would have "
                    f"no effect. Received: name={name!r}. Did you mean {close[0]!r}? "
                    f"The build function declares {warning.declared}."
                )
    if problems:
        raise SpecError(problems)
    warnings.warn(warning, stacklevel=3)


def cached_search_space(spec: TuningSpec) -> tuple[HyperModel, HyperParameters]:
    """Return `build_search_space(spec)`, built once per process and spec."""
    key = spec.model_dump_json()
    with _cache_lock:
        if key not in _search_spaces:
            _search_spaces[key] = build_search_space(spec)
        return _search_spaces[key]
