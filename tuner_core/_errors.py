"""Exceptions raised by tuner_core."""

from __future__ import annotations


class FailedTrialError(Exception):
    """Marks the current trial failed without retrying it.

    Raise it from a build function or a `HyperModel.fit` override when a
    configuration can never succeed (for example a model too large for memory).
    """


class ObjectiveNotFoundError(ValueError):
    """The objective names a metric the model does not report."""


class SearchSpaceConflictError(ValueError):
    """A hyperparameter name was declared again with another definition."""


class SearchSpaceChangedError(ValueError):
    """A resumed search found a search space that differs from the saved one."""
