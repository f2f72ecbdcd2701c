"""Turning pydantic validation errors into messages that name the field and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any, get_args

from pydantic import BaseModel, ValidationError


class SpecError(ValueError):
    """Error for an invalid job spec.

    Each entry of `problems` names a field, the value received and the fix.
    """

    def __init__(self, problems: Sequence[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        where = f"Invalid spec {source}" if source else "Invalid spec"
        if len(self.problems) == 1:
            message = f"{where}: {self.problems[0]}"
        else:
            message = f"{where}:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problems, self.source))


def format_location(location: Sequence[str | int]) -> str:
    """Format a pydantic error location as a spec path: `hyperparameters[0].step`."""
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def problems_from_validation_error(
    error: ValidationError, model: type[BaseModel] | None = None
) -> list[str]:
    """Return one message per pydantic error, each naming field, value and fix.

    With the validated `model`, an unknown field gets the closest known field
    name of its table as a suggestion.
    """
    problems: list[str] = []
    for details in error.errors(include_url=False):
        cause = details.get("ctx", {}).get("error")
        if isinstance(cause, SpecError):
            problems.extend(cause.problems)
        else:
            problems.append(_describe(details, model))
    return problems


# Fields that a spec file cannot set, and that are therefore never suggested.
_UNSUGGESTED_FIELDS = {"base_dir"}
# Minimum similarity (difflib's ratio) of a field name to an unknown key to suggest it.
_SUGGESTION_CUTOFF = 0.8


def _suggest_field(model: type[BaseModel] | None, location: Sequence[str | int]) -> str:
    """Return ' Did you mean ...?' for an unknown key at `location`, or ''."""
    table = _model_at(model, location[:-1]) if model is not None else None
    key = location[-1] if location else None
    if table is None or not isinstance(key, str):
        return ""
    known = [name for name in table.model_fields if name not in _UNSUGGESTED_FIELDS]
    matches = difflib.get_close_matches(key, known, n=1, cutoff=_SUGGESTION_CUTOFF)
    return f" Did you mean {matches[0]!r}?" if matches else ""


def _model_at(
    model: type[BaseModel], location: Sequence[str | int]
) -> type[BaseModel] | None:
    """Return the pydantic model of the table at `location` inside `model`."""
    for part in location:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        found = _find_model(field.annotation) if field is not None else None
        if found is None:
            return None
        model = found
    return model


def _find_model(annotation: Any) -> type[BaseModel] | None:
    """Return the pydantic model in a field's type, e.g. list[Model] or Model | None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _find_model(argument)
        if found is not None:
            return found
    return None


def _describe(details: Any, model: type[BaseModel] | None = None) -> str:
    location = format_location(details["loc"])
    kind = details["type"]

    if kind == "value_error":
        message = str(details["ctx"]["error"])
        return f"{location}: {message}" if location else message
    if kind == "missing":
        return (
            f"{location}: this field is required but missing. Add {location} to "
            "the spec."
        )
    if kind == "extra_forbidden":
        suggestion = _suggest_field(model, details["loc"])
        return (
            f"{location}: unknown field. Received: {location}={details['input']!r}."
            f"{suggestion} Remove it, or correct its spelling."
        )

    if kind == "list_type" and location == "hyperparameters":
        return (
            f"{location}: must be a list of tables. Received: {location}="
            f"{details['input']!r}. Write each entry as its own [[hyperparameters]] "
            "table, with double brackets."
        )
    expected = _EXPECTED_TYPES.get(kind)
    if expected is not None:
        return (
            f"{location}: must be {expected}. Received: {location}="
            f"{details['input']!r}. Write {location} as {expected}."
        )
    return (
        f"{location}: {details['msg']}. Received: {location}={details['input']!r}. "
        "Correct the value in the spec."
    )


_EXPECTED_TYPES = {
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "path_type": "a file path string",
}
