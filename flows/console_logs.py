"""Prefect's console handler for `tuneflow tune`, without expected trial failures.

A trial that fails, times out or stops at Ctrl-C makes Prefect's task engine
log errors with tracebacks, and the flow logs the search that such failures
stopped. The command reports those trials and the search in its own lines, so
`TrialConsoleHandler` drops these records from the console. Prefect's API
handler still sends them to the Prefect server, and `tuneflow tune --verbose`
keeps Prefect's own console handler. Errors of any other kind, such as a bug in
a task or in the flow, keep their tracebacks.

`tuneflow tune` selects the handler through Prefect's logging settings, before
it imports Prefect: `PREFECT_LOGGING_HANDLERS_CONSOLE_CLASS` replaces the class
of the `console` handler in Prefect's logging.yml. Child processes that set up
Prefect's logging, such as the workers of a local Dask cluster, inherit it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from prefect.logging.handlers import PrefectConsoleHandler

from tasks.expected_failures import is_expected_failure
from tasks.stop_request import SearchInterruptedError

__all__ = ["ExpectedFailureFilter", "TrialConsoleHandler", "is_expected_error"]


def is_expected_error(error: BaseException) -> bool:
    """Return whether an error is an expected trial failure or a search it stopped.

    Expected are a `TrialError` (a trial failed or timed out), a
    `SearchInterruptedError`, a `SpecError` (the command prints it), and a
    `SearchFailedError` that trial errors caused. A `SearchFailedError` caused by an error of another kind, such as
    a bug in the trial task, is not.
    """
    if isinstance(error, SearchInterruptedError):
        return True
    spec_error = _imported_class("tasks._spec_errors", "SpecError")
    if spec_error is not None and isinstance(error, spec_error):
        return True
    trial_error = _imported_class("tasks.trial_execution", "TrialError")
    if trial_error is not None and isinstance(error, trial_error):
        return True
    search_failed = _imported_class("flows.trial_loop", "SearchFailedError")
    if search_failed is not None and isinstance(error, search_failed):
        cause = error.__cause__
        return cause is None or is_expected_error(cause)
    return False


def _imported_class(module_name: str, class_name: str) -> type | None:
    """Return a class from a module that this process has imported, else None.

    An error of a class whose module was never imported cannot exist here, and
    importing those modules, which load Keras and MLflow, would slow down every
    process that logs to Prefect's console, such as Prefect's own server.
    """
    module = sys.modules.get(module_name)
    return getattr(module, class_name, None)


class ExpectedFailureFilter(logging.Filter):
    """Logging filter that drops the records of expected trial failures.

    A record is about one when its exception or one of its arguments is
    expected (`is_expected_error`), or when it belongs to a task run that
    `tasks.expected_failures` marks. Prefect logs a task run's final state,
    such as "Finished in state Failed(...)", without the exception, so only
    the mark identifies that record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        task_run_id = getattr(record, "task_run_id", None)
        if task_run_id is not None and is_expected_failure(str(task_run_id)):
            return False

        errors = []
        if isinstance(record.args, tuple):
            errors = [arg for arg in record.args if isinstance(arg, BaseException)]
        if record.exc_info and record.exc_info[1] is not None:
            errors.append(record.exc_info[1])
        return not any(is_expected_error(error) for error in errors)


class TrialConsoleHandler(PrefectConsoleHandler):
    """Prefect's console handler with an `ExpectedFailureFilter`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.addFilter(ExpectedFailureFilter())
