"""Task runs whose trial failed in a way that the search expects and reports.

`tasks.trial` marks a trial's task run here when the trial fails, times out
or stops at a stop request, before Prefect's task engine logs the failure.
`flows.console_logs` reads the marks to keep Prefect's error records of those
task runs off the console of `tuneflow tune`, which prints one line per trial.

This module imports only the standard library, because the console handler
that reads it loads in every process that sets up Prefect's logging.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_task_run_ids: set[str] = set()


def mark_expected_failure(task_run_id: str) -> None:
    """Mark a task run whose current attempt failed as an expected trial failure."""
    with _lock:
        _task_run_ids.add(task_run_id)


def clear_expected_failure(task_run_id: str) -> None:
    """Remove the mark, as a new attempt of the task run starts."""
    with _lock:
        _task_run_ids.discard(task_run_id)


def is_expected_failure(task_run_id: str) -> bool:
    """Return whether the task run's last attempt failed as an expected failure."""
    with _lock:
        return task_run_id in _task_run_ids
