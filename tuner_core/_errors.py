"""Exceptions raised by tuner_core."""

from __future__ import annotations

from typing import Any


class FailedTrialError(Exception):
    """Marks the current trial failed without retrying it.

    Raise it from a build function or a `HyperModel.fit` override when a
    configuration can never succeed (for example a model too large for memory).
    """


class ObjectiveNotFoundError(ValueError):
    """The objective names a metric the model does not report."""


class SearchSpaceConflictError(ValueError):
    """A hyperparameter name was declared again with another definition."""


class NewEntryNotAllowedError(ValueError):
    """A hypermodel declared a name that `allow_new_entries=False` rejects.

    `name` is the rejected hyperparameter's name.
    """

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_new_entry_error, (str(self), self.name))


def _rebuild_new_entry_error(message: str, name: str) -> NewEntryNotAllowedError:
    return NewEntryNotAllowedError(message, name=name)


class SearchSpaceChangedError(ValueError):
    """A resumed search found a search space that differs from the saved one."""


class TrialTimeoutError(FailedTrialError):
    """A trial ran past its time limit, so its training stopped.

    It is a `FailedTrialError`, so the trial fails without retries, because
    the same configuration under the same limit would most likely time out again.
    `timeout_seconds` is the limit and `elapsed_seconds` the time the trial
    had run when it stopped.
    """

    def __init__(
        self, message: str, *, timeout_seconds: float, elapsed_seconds: float
    ) -> None:
        super().__init__(message)
        self.timeout_seconds = timeout_seconds
        self.elapsed_seconds = elapsed_seconds

    def __reduce__(self) -> tuple[Any, ...]:
        arguments = (str(self), self.timeout_seconds, self.elapsed_seconds)
        return (_rebuild_timeout_error, (type(self), *arguments))


def _rebuild_timeout_error(
    cls: type[TrialTimeoutError],
    message: str,
    timeout_seconds: float,
    elapsed_seconds: float,
) -> TrialTimeoutError:
    return cls(
        message, timeout_seconds=timeout_seconds, elapsed_seconds=elapsed_seconds
    )
