"""Conditions that make a hyperparameter active only for some parent values."""

from __future__ import annotations

from typing import Any


class Parent:
    """Active when the hyperparameter `name` takes one of `values`."""

    def __init__(self, name: str, values: Any) -> None:
        if not isinstance(values, (list, tuple)):
            values = [values]
        if not values:
            raise ValueError(
                f"parent_values for parent '{name}' must not be empty, but got "
                f"{values!r}. Pass the parent values that activate the scope."
            )
        self.name = name
        self.values = list(values)

    def is_active(self, parent_value: Any) -> bool:
        return parent_value in self.values

    def get_config(self) -> dict[str, Any]:
        return {"class_name": "Parent", "config": {"name": self.name, "values": self.values}}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Parent:
        inner = config.get("config", config)
        return cls(name=inner["name"], values=inner["values"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Parent):
            return NotImplemented
        return self.name == other.name and self.values == other.values

    def __hash__(self) -> int:
        return hash((self.name, tuple(self.values)))

    def __repr__(self) -> str:
        return f"Parent(name={self.name!r}, values={self.values!r})"
