"""Trials run by spawned processes at the same moment, for the tracking store tests.

The processes import this module by name, so it lives in the tests folder that
tests/conftest.py puts on sys.path, and spawned processes inherit that path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from threading import Barrier
from typing import Any

from tasks.data import DataRef
from tasks.results import TrialResult
from tasks.spec import TuningSpec
from tasks.trial_execution import execute_trial, prepare_trial_inputs

LOCK_MESSAGES = ("database is locked", "already exists")


class _StoreErrorRecords(logging.Handler):
    """Collects log messages that report a locked database or a duplicate entry."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(text in message for text in LOCK_MESSAGES):
            self.messages.append(f"{record.name}: {message}")


def run_trials_together(
    numbers: Iterable[int],
    values: dict[str, Any],
    data_ref: DataRef,
    spec: TuningSpec,
    parent_run_id: str,
    tracking_uri: str,
    barrier: Barrier,
) -> tuple[list[TrialResult], list[str]]:
    """Run the trials `numbers` after every process passed `barrier`.

    Keras and the data load before the barrier, so the processes write to the
    store at the same time. Returns the results, and the errors raised or
    logged about a locked database or a duplicate entry.
    """
    prepare_trial_inputs(data_ref, spec)
    records = _StoreErrorRecords()
    logging.getLogger().addHandler(records)
    barrier.wait()

    results: list[TrialResult] = []
    errors: list[str] = []
    for number in numbers:
        try:
            result = execute_trial(
                number, values, data_ref, spec, parent_run_id, tracking_uri
            )
            results.append(result)
        except Exception as error:
            errors.append(f"trial {number}: {type(error).__name__}: {error}")
    logging.getLogger().removeHandler(records)
    return results, errors + records.messages
