"""Building a tailored search space from a hypermodel, and describing it."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Collection, Iterator
from typing import Any

from tuner_core._hp_types import HyperParameter, serialize
from tuner_core._hypermodel import HyperModel
from tuner_core._session import keras_settings_restored, reset_keras_session
from tuner_core._hyperparameters import HyperParameters

logger = logging.getLogger(__name__)

MAX_POPULATE_BUILDS = 64


class SearchSpace:
    """The tuned space plus the names the hypermodel declares but does not tune.

    `replaced` maps each name that a given entry overrides to the hypermodel's
    own declaration of it, as first seen.
    """

    def __init__(
        self,
        tuned: HyperParameters,
        untuned: list[HyperParameter],
        replaced: dict[str, HyperParameter] | None = None,
    ) -> None:
        self.tuned = tuned
        self.untuned = untuned
        self.replaced = dict(replaced or {})


class OverrideTypeWarning(UserWarning):
    """Warning for a given hyperparameter whose values differ in kind from the model's.

    `conflicts` maps each such name to (the given entry, the hypermodel's own
    declaration). The kinds are booleans, numbers and strings.
    """

    def __init__(
        self, message: str, conflicts: dict[str, tuple[HyperParameter, HyperParameter]]
    ) -> None:
        super().__init__(message)
        self.conflicts = conflicts


def value_kind(value: Any) -> str:
    """Return "boolean", "number" or "string" for a hyperparameter value."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "string"


def override_kind_conflicts(
    tuned: HyperParameters, replaced: dict[str, HyperParameter]
) -> dict[str, tuple[HyperParameter, HyperParameter]]:
    """Return the overrides whose values differ in kind from the declarations they replace.

    An Int entry for a Float declaration passes, because both give numbers. A
    Float entry for a Boolean declaration does not, because the build function
    then reads a number where it tests a truth value.
    """
    conflicts = {}
    for name, declaration in replaced.items():
        override = next(iter(tuned._by_name(name)), None)
        if override is None:
            continue
        if value_kind(override.default) != value_kind(declaration.default):
            conflicts[name] = (override, declaration)
    return conflicts


def _warn_override_kinds(
    tuned: HyperParameters, replaced: dict[str, HyperParameter]
) -> None:
    conflicts = override_kind_conflicts(tuned, replaced)
    if not conflicts:
        return
    details = "; ".join(
        f"{name!r} is given as {type(override).__name__} "
        f"({value_kind(override.default)} "
        f"values) but declared as {type(declared).__name__} "
        f"({value_kind(declared.default)} values)"
        for name, (override, declared) in conflicts.items()
    )
    message = (
        f"A given hyperparameter replaces the build function's declaration with "
        f"values of another kind: {details}. The build function receives the given "
        "values, so it may train the same model in every trial while each trial "
        "records a different value. Give the entry the type the build function "
        "declares."
    )
    warnings.warn(OverrideTypeWarning(message, conflicts), stacklevel=3)


def build_search_space(
    hypermodel: HyperModel,
    hyperparameters: HyperParameters | None = None,
    *,
    tune_new_entries: bool = True,
    allow_new_entries: bool = True,
) -> HyperParameters:
    """Build the tuned search space of `hypermodel`, tailored by `hyperparameters`.

    Entries of `hyperparameters` override the hypermodel's declarations of the
    same name. Names the hypermodel declares beyond them join the space when
    `tune_new_entries` is true and otherwise keep their defaults in every trial.
    The hypermodel is built once per branch of its conditional scopes so that
    every declared name is found before any trial runs.
    """
    return explore_search_space(
        hypermodel,
        hyperparameters,
        tune_new_entries=tune_new_entries,
        allow_new_entries=allow_new_entries,
    ).tuned


@keras_settings_restored()
def explore_search_space(
    hypermodel: HyperModel,
    hyperparameters: HyperParameters | None = None,
    *,
    tune_new_entries: bool = True,
    allow_new_entries: bool = True,
) -> SearchSpace:
    """Like `build_search_space`, also returning the untuned declarations.

    Settings of `keras.config` that the builds change are restored on return.
    """
    import keras

    tuned = hyperparameters.copy() if hyperparameters is not None else HyperParameters()
    tuned.mark_overrides()
    tuned._reject_new_names = False
    known = tuned.copy()
    known._reject_new_names = not allow_new_entries
    untuned: list[HyperParameter] = []

    hypermodel.declare_hyperparameters(known)
    pending: list[dict[str, Any]] = [{}]
    tried: set[tuple[tuple[str, Any], ...]] = set()
    declared: set[str] = set()
    replaced: dict[str, HyperParameter] = {}
    while pending and len(tried) < MAX_POPULATE_BUILDS:
        assignment = pending.pop(0)
        key = tuple(sorted(assignment.items(), key=lambda item: item[0]))
        if key in tried:
            continue
        tried.add(key)

        trial_hp = known.copy()
        trial_hp._reject_new_names = not allow_new_entries
        trial_hp.set_values(assignment)
        reset_keras_session()
        hypermodel.build(trial_hp)
        declared |= trial_hp._declared_names
        for name, declaration in trial_hp._replaced.items():
            replaced.setdefault(name, declaration)

        for hp in trial_hp.space:
            if hp.name in known and any(
                existing.conditions == hp.conditions for existing in known._by_name(hp.name)
            ):
                continue
            known._space.append(hp)
            if tune_new_entries:
                tuned._space.append(hp)
            else:
                untuned.append(hp)
        pending.extend(_assignments_activating(trial_hp, assignment))

    if pending:
        logger.warning(
            "Stopped exploring conditional branches after %d builds; hyperparameters "
            "declared only in unexplored branches join the space when first seen.",
            MAX_POPULATE_BUILDS,
        )
    reset_keras_session()
    _warn_unread_overrides(tuned, declared)
    _warn_override_kinds(tuned, replaced)
    tuned._values = {}
    tuned.set_values({})
    return SearchSpace(tuned=tuned, untuned=untuned, replaced=replaced)


class UnreadHyperparametersWarning(UserWarning):
    """Warning for given hyperparameters that the build function never declares.

    `unread` lists those names and `declared` the names the build declares.
    """

    def __init__(self, message: str, unread: list[str], declared: list[str]) -> None:
        super().__init__(message)
        self.unread = unread
        self.declared = declared


def _warn_unread_overrides(tuned: HyperParameters, declared: set[str]) -> None:
    """Warn about given hyperparameters that the build function never declares."""
    unread = [name for name in tuned.names() if name in tuned.overrides - declared]
    if not unread or not declared:
        return
    message = (
        f"Hyperparameters {unread} are in the given HyperParameters, but the "
        f"hypermodel's build function never declares them, so they have no effect "
        f"there. It declares {sorted(declared)}. Check the spelling; a name read "
        "only in HyperModel.fit is not seen here."
    )
    warnings.warn(
        UnreadHyperparametersWarning(message, unread, sorted(declared)), stacklevel=3
    )


def _assignments_activating(
    hp: HyperParameters, assignment: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    """Yield value assignments that would activate the inactive entries of `hp`."""
    for entry in hp.space:
        if hp.is_active(entry):
            continue
        for condition in entry.conditions:
            if condition.is_active(hp._values.get(condition.name)):
                continue
            for value in condition.values:
                yield {**assignment, condition.name: value}


def search_space_summary_text(space: HyperParameters) -> str:
    """Return the search space summary in KerasTuner's format."""
    lines = ["Search space summary", f"Default search space size: {len(space.space)}"]
    for hp in space.space:
        config = hp.get_config()
        config.pop("name")
        lines.append(f"{hp.name} ({type(hp).__name__})")
        lines.append(str(config))
    return "\n".join(lines)


def count_configurations(space: HyperParameters, limit: int = 100_000) -> int | None:
    """Return the number of distinct active configurations, or None if infinite.

    Returns None also when the count exceeds `limit`.
    """
    if any(entry.grid_values() is None for entry in space.space):
        return None
    count = 0
    for _ in iterate_configurations(space):
        count += 1
        if count > limit:
            return None
    return count


def iterate_configurations(space: HyperParameters) -> Iterator[dict[str, Any]]:
    """Yield every distinct configuration of the active entries of a finite space.

    Yields nothing when some active entry has infinitely many values.
    """
    entries = space.space
    if any(entry.grid_values() is None for entry in entries):
        return

    probe = space.copy()

    def extend(index: int, partial: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if index == len(entries):
            yield dict(partial)
            return
        entry = entries[index]
        probe._values = partial
        if not probe.is_active(entry) or entry.name in partial:
            yield from extend(index + 1, partial)
            return
        for value in entry.grid_values() or []:
            partial[entry.name] = value
            yield from extend(index + 1, partial)
            del partial[entry.name]

    yield from extend(0, {})


def search_space_differences(
    saved: HyperParameters,
    built: HyperParameters,
    learned_names: Collection[str] = (),
) -> list[str]:
    """Describe each hyperparameter whose declarations differ between two spaces.

    A saved name missing from `built` is no difference when it is in
    `learned_names`, because trials declared it outside the build function.
    """
    saved_entries = _entries_by_name(saved)
    built_entries = _entries_by_name(built)
    differences = []
    for name in sorted(saved_entries.keys() | built_entries.keys()):
        old = saved_entries.get(name, [])
        new = built_entries.get(name, [])
        if _serialized(old) == _serialized(new):
            continue
        if not new and name in learned_names:
            continue
        if not old:
            differences.append(f"{name}: added as {_describe(new)}")
        elif not new:
            differences.append(f"{name}: removed, was {_describe(old)}")
        else:
            differences.append(f"{name}: was {_describe(old)}, now {_describe(new)}")
    return differences


def _entries_by_name(space: HyperParameters) -> dict[str, list[HyperParameter]]:
    entries: dict[str, list[HyperParameter]] = {}
    for entry in space.space:
        entries.setdefault(entry.name, []).append(entry)
    return entries


def _serialized(entries: list[HyperParameter]) -> list[str]:
    return sorted(
        json.dumps(serialize(entry), sort_keys=True, default=str) for entry in entries
    )


def _describe(entries: list[HyperParameter]) -> str:
    described = []
    for entry in entries:
        text = repr(entry)
        if entry.conditions:
            text += f" when {entry.conditions}"
        described.append(text)
    return " and ".join(described)

