"""The `HyperParameters` container: a search space and one trial's values."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

from tuner_core._conditions import Parent
from tuner_core._errors import NewEntryNotAllowedError, SearchSpaceConflictError
from tuner_core._hp_types import (
    Boolean,
    Choice,
    Fixed,
    Float,
    HyperParameter,
    Int,
    hyperparameter_from_config,
    serialize,
)


class HyperParameters:
    """A search space and the values of one point in it.

    A build function declares hyperparameters through `Int`, `Float`,
    `Choice`, `Boolean` and `Fixed`. Each call registers the hyperparameter on
    first use and returns its current value, or None when a condition makes it
    inactive. Entries passed by the user to a tuner are overrides: a
    hypermodel's own declaration of the same name returns the override's value.
    Declaring a name again with another definition raises
    `SearchSpaceConflictError`.
    """

    def __init__(self) -> None:
        self._space: list[HyperParameter] = []
        self._values: dict[str, Any] = {}
        self._conditions: list[Parent] = []
        self._name_scopes: list[str] = []
        self._overrides: set[str] = set()
        self._reject_new_names = False
        # Names a build function declared through this object, for spotting
        # user entries that nothing reads (a misspelled name, say).
        self._declared_names: set[str] = set()
        # The build function's own declarations that an override replaced, by
        # name, for spotting an override of another type.
        self._replaced: dict[str, HyperParameter] = {}

    # Declaring hyperparameters.

    def Int(
        self,
        name: str,
        min_value: int,
        max_value: int,
        step: int | None = None,
        sampling: str = "linear",
        default: int | None = None,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> int | None:
        with self._maybe_scope(parent_name, parent_values):
            hp = Int(
                name=self._scoped_name(name),
                min_value=min_value,
                max_value=max_value,
                step=step,
                sampling=sampling,
                default=default,
                conditions=self._conditions,
            )
            return self._retrieve(hp)

    def Float(
        self,
        name: str,
        min_value: float,
        max_value: float,
        step: float | None = None,
        sampling: str = "linear",
        default: float | None = None,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> float | None:
        with self._maybe_scope(parent_name, parent_values):
            hp = Float(
                name=self._scoped_name(name),
                min_value=min_value,
                max_value=max_value,
                step=step,
                sampling=sampling,
                default=default,
                conditions=self._conditions,
            )
            return self._retrieve(hp)

    def Choice(
        self,
        name: str,
        values: list[Any],
        ordered: bool | None = None,
        default: Any = None,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> Any:
        with self._maybe_scope(parent_name, parent_values):
            hp = Choice(
                name=self._scoped_name(name),
                values=values,
                ordered=ordered,
                default=default,
                conditions=self._conditions,
            )
            return self._retrieve(hp)

    def Boolean(
        self,
        name: str,
        default: bool = False,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> bool | None:
        with self._maybe_scope(parent_name, parent_values):
            hp = Boolean(
                name=self._scoped_name(name), default=default, conditions=self._conditions
            )
            return self._retrieve(hp)

    def Fixed(
        self,
        name: str,
        value: Any,
        parent_name: str | None = None,
        parent_values: Any = None,
    ) -> Any:
        with self._maybe_scope(parent_name, parent_values):
            hp = Fixed(name=self._scoped_name(name), value=value, conditions=self._conditions)
            return self._retrieve(hp)

    # Scopes.

    @contextlib.contextmanager
    def conditional_scope(self, parent_name: str, parent_values: Any) -> Iterator[None]:
        """Make hyperparameters declared inside active only for `parent_values`."""
        full_name = self._scoped_name(parent_name)
        if not self._by_name(full_name):
            raise ValueError(
                f"conditional_scope: parent_name={parent_name!r} is not defined. "
                "Declare the parent hyperparameter before opening a scope on it."
            )
        self._conditions.append(Parent(full_name, parent_values))
        try:
            yield
        finally:
            self._conditions.pop()

    @contextlib.contextmanager
    def name_scope(self, name: str) -> Iterator[None]:
        """Prefix the names of hyperparameters declared inside with `name/`."""
        self._name_scopes.append(name)
        try:
            yield
        finally:
            self._name_scopes.pop()

    def _maybe_scope(
        self, parent_name: str | None, parent_values: Any
    ) -> contextlib.AbstractContextManager[None]:
        if parent_name is None:
            return contextlib.nullcontext()
        return self.conditional_scope(parent_name, parent_values)

    def _scoped_name(self, name: str) -> str:
        return "/".join([*self._name_scopes, name])

    # Registration and lookup.

    def _by_name(self, name: str) -> list[HyperParameter]:
        return [hp for hp in self._space if hp.name == name]

    def _retrieve(self, hp: HyperParameter) -> Any:
        self._declared_names.add(hp.name)
        existing = self._find_declared(hp)
        if existing is None:
            self._register(hp)
            existing = hp
        if not self.is_active(existing):
            return None
        return self._values.get(existing.name, existing.default)

    def _find_declared(self, hp: HyperParameter) -> HyperParameter | None:
        """Return the declaration `hp` repeats, or raise if it contradicts one."""
        same_name = self._by_name(hp.name)
        if hp.name in self._overrides and same_name:
            self._replaced.setdefault(hp.name, hp)
            return same_name[0]
        for existing in same_name:
            if existing.conditions == hp.conditions:
                if existing.definition() == hp.definition():
                    return existing
                raise _conflict(existing, hp)
        for existing in same_name:
            if not existing.conditions or not hp.conditions:
                raise _conflict(existing, hp)
        return None

    def _register(self, hp: HyperParameter) -> None:
        if self._reject_new_names:
            raise NewEntryNotAllowedError(
                f"Hyperparameter {hp.name!r} is not in the given HyperParameters and "
                "allow_new_entries=False. Add it to the HyperParameters passed to "
                "the tuner, or pass allow_new_entries=True.",
                name=hp.name,
            )
        self._space.append(hp)
        if self.is_active(hp) and hp.name not in self._values:
            self._values[hp.name] = hp.default

    def is_active(self, hyperparameter: HyperParameter | str) -> bool:
        """Return whether every condition of the hyperparameter holds."""
        if isinstance(hyperparameter, str):
            candidates = self._by_name(hyperparameter)
            return any(self.is_active(hp) for hp in candidates)
        return self.conditions_are_active(hyperparameter.conditions)

    def conditions_are_active(self, conditions: list[Parent]) -> bool:
        for condition in conditions:
            parents = self._by_name(condition.name)
            if not any(self.is_active(parent) for parent in parents):
                return False
            if not condition.is_active(self._values.get(condition.name)):
                return False
        return True

    def get(self, name: str) -> Any:
        """Return the current value of `name`, or None when it is inactive."""
        if not self._by_name(name):
            raise KeyError(
                f"Hyperparameter {name!r} does not exist. Known names: {self.names()}."
            )
        if not self.is_active(name):
            return None
        active = [hp for hp in self._by_name(name) if self.is_active(hp)]
        return self._values.get(name, active[0].default)

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self._by_name(name))

    def names(self) -> list[str]:
        return list(dict.fromkeys(hp.name for hp in self._space))

    # Views of the space and the values.

    @property
    def space(self) -> list[HyperParameter]:
        return list(self._space)

    @property
    def values(self) -> dict[str, Any]:
        """The values of the active hyperparameters, in declaration order."""
        result: dict[str, Any] = {}
        for hp in self._space:
            if hp.name not in result and self.is_active(hp):
                result[hp.name] = self._values.get(hp.name, hp.default)
        return result

    @values.setter
    def values(self, values: dict[str, Any]) -> None:
        self._values = dict(values)

    def set_values(self, values: dict[str, Any]) -> None:
        """Set the given values and fill every other active entry with its default."""
        self._values = dict(values)
        for hp in self._space:
            if hp.name not in self._values and self.is_active(hp):
                self._values[hp.name] = hp.default

    def active_hyperparameters(self) -> list[HyperParameter]:
        return [hp for hp in self._space if self.is_active(hp)]

    def mark_overrides(self) -> None:
        """Treat every current entry as a user override of the hypermodel's own."""
        self._overrides = {hp.name for hp in self._space}

    @property
    def overrides(self) -> set[str]:
        return set(self._overrides)

    # Combining and copying.

    def merge(self, hps: HyperParameters | list[HyperParameter], overwrite: bool = True) -> None:
        """Add the entries of `hps`; with `overwrite`, their values replace ours."""
        if isinstance(hps, HyperParameters):
            entries, values = hps.space, hps._values
        else:
            entries, values = list(hps), {}
        for hp in entries:
            if any(
                existing.conditions == hp.conditions for existing in self._by_name(hp.name)
            ):
                continue
            self._space.append(copy.deepcopy(hp))
        for name, value in values.items():
            if overwrite or name not in self._values:
                self._values[name] = value

    def copy(self) -> HyperParameters:
        clone = HyperParameters()
        clone._space = copy.deepcopy(self._space)
        clone._values = dict(self._values)
        clone._overrides = set(self._overrides)
        return clone

    def get_config(self) -> dict[str, Any]:
        return {
            "space": [serialize(hp) for hp in self._space],
            "values": dict(self._values),
            "overrides": sorted(self._overrides),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HyperParameters:
        hps = cls()
        hps._space = [hyperparameter_from_config(c) for c in config.get("space", [])]
        hps._values = dict(config.get("values", {}))
        hps._overrides = set(config.get("overrides", []))
        return hps

    def __repr__(self) -> str:
        return f"HyperParameters(space={self._space!r}, values={self.values!r})"


def _conflict(existing: HyperParameter, new: HyperParameter) -> SearchSpaceConflictError:
    return SearchSpaceConflictError(
        f"Hyperparameter {new.name!r} is declared twice with different definitions: "
        f"first {existing!r}, now {new!r}. Keep one definition per name, give the "
        "second one another name, or declare each inside its own "
        "conditional_scope so that only one is active at a time."
    )
