"""Spec-worded messages for `[[hyperparameters]]` entries that cannot tailor a space.

tuner_core words its errors for the Python API (the HyperParameters passed to
a tuner). A spec user edits TOML instead, so these messages name the entry,
the spec field and the TOML that fixes it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import tuner_core

if TYPE_CHECKING:
    from tasks.spec import HyperparameterSpec, TuningSpec
    from tuner_core import HyperModel, HyperParameters

# Words for the Python type of a hyperparameter's values, in spec terms.
_VALUE_WORDS = {
    bool: "true or false",
    int: "whole numbers",
    float: "floats",
    str: "strings",
}


def unknown_parent_problem(
    index: int, entry: HyperparameterSpec, declared: HyperParameters
) -> str:
    """Describe an entry whose `parent_name` no entry above it declares."""
    names = declared.names()
    choices = f"one of {names}, the names" if names else "the name of an entry"
    return (
        f"hyperparameters[{index}].parent_name: no [[hyperparameters]] entry above "
        f"this one declares {entry.parent_name!r}. Received: "
        f"parent_name={entry.parent_name!r}. Set parent_name to {choices} declared "
        f"above it, or add an entry named {entry.parent_name!r} above this one; a "
        "parent that only the build function declares needs such an entry too."
    )


def new_entry_problem(name: str) -> str:
    """Describe a name that the build function declares and the spec does not allow."""
    return (
        f"allow_new_entries: the build function declares {name!r}, which no "
        "[[hyperparameters]] entry names, and allow_new_entries = false rejects "
        f"such names. Received: allow_new_entries=false. Add a [[hyperparameters]] "
        f"entry with name = {name!r} (type = 'Fixed' with a value pins it), or set "
        "allow_new_entries = true."
    )


def override_type_problems(
    spec: TuningSpec,
    hypermodel: HyperModel,
    entries: HyperParameters,
    error: Exception,
) -> list[str]:
    """Explain a failed build by entries whose values differ in type from the model's.

    An entry replaces the build function's declaration of its name, as in
    KerasTuner, type and range included. So a Float entry for a name that the
    build function declares as Int hands it floats, which Keras layers can
    reject. Returns one message per such entry, or an empty list when none
    differs or the build function fails with its own declarations too.
    """
    try:
        own_space = tuner_core.explore_search_space(hypermodel)
    except Exception:
        return []
    registered: dict[str, Any] = {}
    for declaration in [*own_space.tuned.space, *own_space.untuned]:
        registered.setdefault(declaration.name, declaration)

    reason = str(error).rstrip().rstrip(".")
    problems = []
    for index, entry in enumerate(spec.hyperparameters):
        declaration = registered.get(entry.name)
        override = next((hp for hp in entries.space if hp.name == entry.name), None)
        if declaration is None or override is None:
            continue
        given_type = type(override.default)
        registered_type = type(declaration.default)
        if given_type is registered_type:
            continue
        registered_kind = type(declaration).__name__
        problems.append(
            f"hyperparameters[{index}]: this {entry.type} entry gives {entry.name!r} "
            f"{_value_word(given_type)}, but the build function declares "
            f"{entry.name!r} as {registered_kind} with {_value_word(registered_type)}. "
            f"Received: type={entry.type!r}. The entry replaces the build function's "
            f"declaration, so building the model failed ({type(error).__name__}: "
            f"{reason}). {_type_fix(entry, registered_kind, registered_type)}"
        )
    return problems


def override_kind_problems(
    spec: TuningSpec, warning: tuner_core.OverrideTypeWarning
) -> list[str]:
    """Describe entries whose values differ in kind from the build function's declaration.

    The build succeeds with such an entry, so nothing else reports it. A Float
    entry for a name declared with `hp.Boolean` hands the build function
    numbers, which it reads as true. Every trial then trains the same model
    while MLflow records a different value.
    """
    problems = []
    for index, entry in enumerate(spec.hyperparameters):
        conflict = warning.conflicts.get(entry.name)
        if conflict is None:
            continue
        override, declared = conflict
        override_type, declared_type = type(override.default), type(declared.default)
        declared_kind = type(declared).__name__
        problems.append(
            f"hyperparameters[{index}]: this {entry.type} entry gives {entry.name!r} "
            f"{_value_word(override_type)}, but the build function declares "
            f"{entry.name!r} as {declared_kind} ({_value_word(declared_type)}). "
            f"Received: type={entry.type!r}. The entry replaces the build "
            "function's declaration, so the build function would receive "
            f"{_value_word(override_type)} and each trial would record a value that "
            f"may not change the model. {_type_fix(entry, declared_kind, declared_type)}"
        )
    return problems


def _value_word(value_type: type) -> str:
    return _VALUE_WORDS.get(value_type, f"{value_type.__name__} values")


def _type_fix(
    entry: HyperparameterSpec, registered_kind: str, registered_type: type
) -> str:
    """Say which type, and for an Int which bounds, make the entry fit the model."""
    fix = f"Use type = {registered_kind!r}, as the build function does"
    has_bounds = entry.min_value is not None and entry.max_value is not None
    if registered_kind == "Int" and has_bounds:
        low, high = math.ceil(entry.min_value), math.floor(entry.max_value)
        if low <= high:
            fix += (
                f", with whole-number bounds such as min_value = {low} and "
                f"max_value = {high}"
            )
    elif entry.type in ("Choice", "Fixed"):
        field = "values" if entry.type == "Choice" else "value"
        fix += f", or write {field} as {_value_word(registered_type)}"
    return fix + "."
