"""The hyperparameter types: Int, Float, Choice, Boolean and Fixed.

Every type maps a probability in [0, 1] to a value (`prob_to_value`) and back
(`value_to_prob`), so oracles sample and model the space through one interface.
Discrete types also list their whole grid (`grid_values`), which lets an oracle
count the distinct configurations of a space and enumerate them.
"""

from __future__ import annotations

import math
from typing import Any

from tuner_core._conditions import Parent

SAMPLINGS = ("linear", "log", "reverse_log")
MAX_GRID_SIZE = 100_000


def clean_float(value: float) -> float:
    """Round away binary noise such as 0.30000000000000004 (12 significant digits)."""
    return float(f"{value:.12g}")


class HyperParameter:
    """Base class: a name, a default and the conditions that make it active."""

    def __init__(
        self,
        name: str,
        default: Any = None,
        conditions: list[Parent] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"A hyperparameter name must be a non-empty string, but got "
                f"name={name!r}. Pass a name such as 'units'."
            )
        self.name = name
        self._default = default
        self.conditions = list(conditions or [])

    @property
    def default(self) -> Any:
        return self._default

    def _label(self) -> str:
        return f"{type(self).__name__} '{self.name}'"

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "default": self.default,
            "conditions": [c.get_config() for c in self.conditions],
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> HyperParameter:
        config = dict(config)
        config["conditions"] = [Parent.from_config(c) for c in config.get("conditions", [])]
        return cls(**config)

    def definition(self) -> dict[str, Any]:
        """Return the config without conditions, for comparing two declarations."""
        config = self.get_config()
        config.pop("conditions")
        return config

    def grid_values(self) -> list[Any] | None:
        """Return every value this hyperparameter can take, or None if infinite."""
        return None

    def prob_to_value(self, prob: float) -> Any:
        raise NotImplementedError

    def value_to_prob(self, value: Any) -> float:
        raise NotImplementedError

    def random_sample(self, rng: Any) -> Any:
        return self.prob_to_value(float(rng.random()))

    def validate_value(self, value: Any) -> None:
        """Raise ValueError when `value` is not one this hyperparameter can take."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.definition().items() if k != "name")
        return f"{type(self).__name__}(name={self.name!r}, {args})"


def _index_from_prob(prob: float, size: int) -> int:
    return min(max(int(math.floor(prob * size)), 0), size - 1)


class _Numerical(HyperParameter):
    """Shared range, step and sampling logic of Int and Float."""

    def __init__(
        self,
        name: str,
        min_value: float,
        max_value: float,
        step: float | None = None,
        sampling: str | None = "linear",
        default: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, default=default, **kwargs)
        sampling = "linear" if sampling is None else str(sampling).lower()
        if sampling not in SAMPLINGS:
            raise ValueError(
                f"{self._label()}: sampling must be one of {list(SAMPLINGS)}, but got "
                f"sampling={sampling!r}. Use 'linear', 'log' or 'reverse_log'."
            )
        if min_value > max_value:
            raise ValueError(
                f"{self._label()}: min_value must be <= max_value, but got "
                f"min_value={min_value!r}, max_value={max_value!r}. Swap the bounds."
            )
        if sampling != "linear" and min_value <= 0:
            raise ValueError(
                f"{self._label()}: sampling={sampling!r} needs min_value > 0, but got "
                f"min_value={min_value!r}. Raise min_value above 0 or use "
                "sampling='linear'."
            )
        if step is not None and step <= 0:
            raise ValueError(
                f"{self._label()}: step must be > 0, but got step={step!r}. Pass a "
                "positive step, or leave step unset."
            )
        if step is not None and sampling != "linear" and step <= 1:
            raise ValueError(
                f"{self._label()}: with sampling={sampling!r} the step is a "
                f"multiplying factor and must be > 1, but got step={step!r}. "
                "Pass a factor such as 10, or use sampling='linear'."
            )
        self.min_value = min_value
        self.max_value = max_value
        self.step = step
        self.sampling = sampling

    @property
    def default(self) -> Any:
        return self.min_value if self._default is None else self._default

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            min_value=self.min_value,
            max_value=self.max_value,
            step=self.step,
            sampling=self.sampling,
        )
        return config

    def _stepped_grid(self) -> list[float]:
        """Return the grid min, min+step, ... (or min*step^k) up to max inclusive."""
        assert self.step is not None
        values: list[float] = []
        if self.sampling == "linear":
            count = int(math.floor((self.max_value - self.min_value) / self.step + 1e-9))
            if count + 1 > MAX_GRID_SIZE:
                return []
            values = [self.min_value + k * self.step for k in range(count + 1)]
        else:
            value = self.min_value
            while value <= self.max_value * (1 + 1e-9) and len(values) < MAX_GRID_SIZE:
                values.append(value)
                value *= self.step
            if self.sampling == "reverse_log":
                values = sorted(self.max_value + self.min_value - v for v in values)
        return values

    def _continuous_from_prob(self, prob: float) -> float:
        low, high = self.min_value, self.max_value
        if self.sampling == "linear":
            return low + prob * (high - low)
        log_low, log_high = math.log(low), math.log(high)
        if self.sampling == "log":
            return math.exp(log_low + prob * (log_high - log_low))
        return high + low - math.exp(log_low + (1 - prob) * (log_high - log_low))

    def _continuous_to_prob(self, value: float) -> float:
        low, high = self.min_value, self.max_value
        if high == low:
            return 0.5
        if self.sampling == "linear":
            return (value - low) / (high - low)
        log_low, log_high = math.log(low), math.log(high)
        if self.sampling == "log":
            return (math.log(value) - log_low) / (log_high - log_low)
        return 1 - (math.log(high + low - value) - log_low) / (log_high - log_low)

    def _check_range(self, value: Any, field: str = "value") -> None:
        if value < self.min_value or value > self.max_value:
            raise ValueError(
                f"{self._label()}: {field}={value!r} is outside [{self.min_value}, "
                f"{self.max_value}]. Pass a {field} within the range."
            )


class Int(_Numerical):
    """An integer in [min_value, max_value], both inclusive."""

    def __init__(
        self,
        name: str,
        min_value: int,
        max_value: int,
        step: int | None = None,
        sampling: str | None = "linear",
        default: int | None = None,
        **kwargs: Any,
    ) -> None:
        HyperParameter.__init__(self, name=name)
        for field, value in (("min_value", min_value), ("max_value", max_value)):
            _require_integral(self._label(), field, value)
        if step is not None and (sampling in (None, "linear")):
            _require_integral(self._label(), "step", step)
            step = int(step)
        super().__init__(
            name=name,
            min_value=int(min_value),
            max_value=int(max_value),
            step=step,
            sampling=sampling,
            default=default,
            **kwargs,
        )
        if self.step is None and self.sampling == "linear":
            self.step = 1
        if default is not None:
            _require_integral(self._label(), "default", default)
            self._default = int(default)
            self._check_range(self._default, "default")

    def grid_values(self) -> list[int] | None:
        if self.step is None:
            size = self.max_value - self.min_value + 1
            if size > MAX_GRID_SIZE:
                return None
            return list(range(self.min_value, self.max_value + 1))
        grid = self._stepped_grid()
        return sorted({int(round(v)) for v in grid}) or None

    def prob_to_value(self, prob: float) -> int:
        if self.step is not None or self.sampling == "linear":
            grid = self.grid_values()
            if grid:
                if self.sampling == "linear":
                    return grid[_index_from_prob(prob, len(grid))]
                return _nearest(grid, self._continuous_from_prob(prob))
        value = int(round(self._continuous_from_prob(prob)))
        return min(max(value, self.min_value), self.max_value)

    def value_to_prob(self, value: Any) -> float:
        grid = self.grid_values()
        if grid and self.sampling == "linear":
            index = grid.index(_nearest(grid, value))
            return (index + 0.5) / len(grid)
        return self._continuous_to_prob(float(value))

    def validate_value(self, value: Any) -> None:
        _require_integral(self._label(), "value", value)
        self._check_range(value)


class Float(_Numerical):
    """A float in [min_value, max_value], both inclusive."""

    def __init__(
        self,
        name: str,
        min_value: float,
        max_value: float,
        step: float | None = None,
        sampling: str | None = "linear",
        default: float | None = None,
        **kwargs: Any,
    ) -> None:
        HyperParameter.__init__(self, name=name)
        for field, value in (("min_value", min_value), ("max_value", max_value)):
            _require_number(self._label(), field, value)
        super().__init__(
            name=name,
            min_value=float(min_value),
            max_value=float(max_value),
            step=None if step is None else float(step),
            sampling=sampling,
            default=default,
            **kwargs,
        )
        if default is not None:
            _require_number(self._label(), "default", default)
            self._default = float(default)
            self._check_range(self._default, "default")

    def grid_values(self) -> list[float] | None:
        if self.step is None:
            return None
        return [clean_float(v) for v in self._stepped_grid()] or None

    def prob_to_value(self, prob: float) -> float:
        grid = self.grid_values()
        if grid:
            if self.sampling == "linear":
                return grid[_index_from_prob(prob, len(grid))]
            return _nearest(grid, self._continuous_from_prob(prob))
        return clean_float(self._continuous_from_prob(prob))

    def value_to_prob(self, value: Any) -> float:
        grid = self.grid_values()
        if grid and self.sampling == "linear":
            index = grid.index(_nearest(grid, value))
            return (index + 0.5) / len(grid)
        return self._continuous_to_prob(float(value))

    def validate_value(self, value: Any) -> None:
        _require_number(self._label(), "value", value)
        self._check_range(value)


class Choice(HyperParameter):
    """One of a list of values, all of one type: int, float, str or bool."""

    def __init__(
        self,
        name: str,
        values: list[Any],
        ordered: bool | None = None,
        default: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, default=default, **kwargs)
        if not isinstance(values, (list, tuple)) or not values:
            raise ValueError(
                f"{self._label()}: values must be a non-empty list, but got "
                f"values={values!r}. Pass the candidate values, e.g. [0.01, 0.001]."
            )
        values = list(values)
        if any(v is None for v in values):
            raise ValueError(
                f"{self._label()}: values must not contain None, but got "
                f"values={values!r}. Remove None, or use a Boolean hyperparameter "
                "to switch a feature off."
            )
        kinds = {_value_kind(v) for v in values}
        if "unsupported" in kinds:
            raise ValueError(
                f"{self._label()}: values must be int, float, str or bool, but got "
                f"values={values!r}. Pass plain numbers or strings."
            )
        if len(kinds) > 1:
            raise ValueError(
                f"{self._label()}: values must all have one type, but got "
                f"values={values!r} (types: {sorted(kinds)}). Write them all as "
                "floats (e.g. 1.0 and 0.1), or all as ints or strings."
            )
        if len(set(values)) != len(values):
            raise ValueError(
                f"{self._label()}: values must be distinct, but got values={values!r}. "
                "Remove the repeated values."
            )
        numeric = kinds <= {"int", "float"}
        if ordered and not numeric:
            raise ValueError(
                f"{self._label()}: ordered=True needs numeric values, but got "
                f"values={values!r}. Remove ordered=True."
            )
        self.values = values
        self.ordered = numeric if ordered is None else bool(ordered)
        if default is not None and default not in values:
            raise ValueError(
                f"{self._label()}: default must be one of values={values!r}, but got "
                f"default={default!r}. Pick a default from the values."
            )

    @property
    def default(self) -> Any:
        return self.values[0] if self._default is None else self._default

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(values=self.values, ordered=self.ordered)
        return config

    def grid_values(self) -> list[Any]:
        return list(self.values)

    def prob_to_value(self, prob: float) -> Any:
        return self.values[_index_from_prob(prob, len(self.values))]

    def value_to_prob(self, value: Any) -> float:
        return (self.values.index(value) + 0.5) / len(self.values)

    def validate_value(self, value: Any) -> None:
        if value not in self.values:
            raise ValueError(
                f"{self._label()}: value {value!r} is not one of {self.values!r}. "
                "Pass one of the listed values."
            )


class Boolean(HyperParameter):
    """True or False."""

    def __init__(self, name: str, default: bool = False, **kwargs: Any) -> None:
        super().__init__(name=name, default=default, **kwargs)
        if not isinstance(default, bool):
            raise ValueError(
                f"{self._label()}: default must be True or False, but got "
                f"default={default!r}. Pass a bool."
            )

    def grid_values(self) -> list[bool]:
        return [False, True]

    def prob_to_value(self, prob: float) -> bool:
        return prob >= 0.5

    def value_to_prob(self, value: Any) -> float:
        return 0.75 if value else 0.25

    def validate_value(self, value: Any) -> None:
        if not isinstance(value, bool):
            raise ValueError(
                f"{self._label()}: value must be True or False, but got {value!r}."
            )


class Fixed(HyperParameter):
    """A value that stays the same in every trial."""

    def __init__(self, name: str, value: Any, **kwargs: Any) -> None:
        kwargs.pop("default", None)
        super().__init__(name=name, default=value, **kwargs)
        if value is None or _value_kind(value) == "unsupported":
            raise ValueError(
                f"{self._label()}: value must be int, float, str or bool, but got "
                f"value={value!r}. Pass a plain number, string or bool."
            )
        self.value = value

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("default")
        config["value"] = self.value
        return config

    def grid_values(self) -> list[Any]:
        return [self.value]

    def prob_to_value(self, prob: float) -> Any:
        return self.value

    def value_to_prob(self, value: Any) -> float:
        return 0.5

    def validate_value(self, value: Any) -> None:
        if value != self.value:
            raise ValueError(
                f"{self._label()}: value must stay {self.value!r}, but got {value!r}."
            )


TYPES: dict[str, type[HyperParameter]] = {
    cls.__name__: cls for cls in (Int, Float, Choice, Boolean, Fixed)
}


def hyperparameter_from_config(config: dict[str, Any]) -> HyperParameter:
    """Build a hyperparameter from `{"class_name": ..., "config": {...}}`."""
    class_name = config.get("class_name")
    if class_name not in TYPES:
        raise ValueError(
            f"Unknown hyperparameter type {class_name!r}. Use one of {sorted(TYPES)}."
        )
    return TYPES[class_name].from_config(config["config"])


def serialize(hp: HyperParameter) -> dict[str, Any]:
    return {"class_name": type(hp).__name__, "config": hp.get_config()}


def _value_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "unsupported"


def _require_integral(label: str, field: str, value: Any) -> None:
    integral = isinstance(value, int) and not isinstance(value, bool)
    if isinstance(value, float) and value.is_integer():
        integral = True
    if not integral:
        raise ValueError(
            f"{label}: {field} must be an integer, but got {field}={value!r}. "
            "Pass a whole number, or use Float for fractional values."
        )


def _require_number(label: str, field: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(
            f"{label}: {field} must be a number, but got {field}={value!r}."
        )
    if not math.isfinite(value):
        raise ValueError(
            f"{label}: {field} must be finite, but got {field}={value!r}."
        )


def _nearest(grid: list[Any], value: float) -> Any:
    return min(grid, key=lambda candidate: abs(candidate - value))
