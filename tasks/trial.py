"""The trial task: one trial as a Prefect task run named `trial-<number>`.

The task takes only small serializable inputs and returns a small dict, so the
same task can run in another process or on another machine.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from prefect import Task, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.client.schemas.objects import TaskRun
from prefect.runtime import task_run as current_task_run
from prefect.states import Cancelled, State

from tasks.dask_stop import stopping_with_search
from tasks.data import DataRef
from tasks.expected_failures import clear_expected_failure, mark_expected_failure
from tasks.results import TrialResult
from tasks.spec import TuningSpec
from tasks.stop_request import SearchInterruptedError, stop_requested
from tasks.trial_execution import TrialError, execute_trial, execute_trial_in_workers
from tasks.trial_plan import TrialPlan
from tasks.workers import TrialWorkers

__all__ = [
    "TrialError",
    "TrialPlan",
    "execute_trial",
    "is_retryable",
    "run_trial",
    "running_in_workers",
]

_trial_workers: ContextVar[TrialWorkers | None] = ContextVar(
    "tuneflow_trial_workers", default=None
)
# Trials that train in this process take turns, because they share Keras's
# global state. A Dask worker with several threads would otherwise run them at once.
_in_process_trial_lock = threading.Lock()


@contextlib.contextmanager
def running_in_workers(workers: TrialWorkers) -> Iterator[TrialWorkers]:
    """Make `run_trial` tasks started inside this block train in `workers`."""
    token = _trial_workers.set(workers)
    try:
        yield workers
    finally:
        _trial_workers.reset(token)


def is_retryable(
    trial_task: Task[..., Any], task_run: TaskRun, state: State[Any]
) -> bool:
    """Return whether a failed trial task may run again (Prefect's retry condition).

    A `TrialError` that a retry would repeat is final: a fatal error, or a
    `tuner_core.FailedTrialError`. Any other error may be transient. No trial
    runs again after a stop request (`tasks.stop_request`).
    """
    if stop_requested():
        return False
    error = state.data
    return not isinstance(error, TrialError) or error.retryable


@task(
    name="run-trial",
    task_run_name="trial-{trial_number}",
    cache_policy=NONE,
    retry_condition_fn=is_retryable,
)
def run_trial(
    trial_number: int,
    values: dict[str, Any],
    data_ref: DataRef,
    spec: TuningSpec,
    parent_run_id: str,
    tracking_uri: str,
    plan: TrialPlan | None = None,
) -> TrialResult | State[Any]:
    """Train one configuration and record it as a child run of the search.

    Inside `running_in_workers`, the training runs in a worker process and this
    task waits for it. Otherwise it runs in this process, such as a Dask
    worker's, one trial at a time. Each retry of the task is a new attempt with
    its own child run. Set the number of retries with `run_trial.with_options`.

    A trial stopped by a stop request (`tasks.stop_request`) ends its task run
    Cancelled, and its future's `result()` raises `SearchInterruptedError`.
    So does a trial that fails after the request, such as in a worker process
    that the interrupt ended, so that a resumed search runs it again. On a
    Dask worker, the request comes from the search's stop event
    (`tasks.dask_stop`).
    """
    run_logger = get_run_logger()
    attempt = current_task_run.get_run_count()
    plan = (plan or TrialPlan()).model_copy(update={"attempt": max(attempt, 1)})
    arguments = (
        trial_number, values, data_ref, spec, parent_run_id, tracking_uri, plan
    )
    stop_watch: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    if spec.engine == "dask":
        stop_watch = stopping_with_search(parent_run_id)
    with stop_watch:
        try:
            result = _train(arguments)
        except SearchInterruptedError as error:
            return Cancelled(message=str(error), data=error)
        except Exception as error:
            if not stop_requested():
                raise
            interrupted = SearchInterruptedError(
                f"Trial {trial_number} failed after the user interrupted the "
                f"search: {type(error).__name__}: {error}"
            )
            return Cancelled(message=str(interrupted), data=interrupted)
    run_logger.info(
        "Trial %d finished with %s=%.6g at epoch %d and hyperparameters %s (run %s).",
        trial_number,
        spec.objective.name,
        result["score"],
        result["best_epoch"],
        result["hyperparameters"],
        result["run_id"],
    )
    return result


def _train(arguments: tuple[Any, ...]) -> TrialResult:
    """Run the trial in the processes of `running_in_workers`, else in this one.

    This is a module function, not inline in `run_trial`, because a Dask worker
    receives `run_trial` pickled by value with the globals that it names, and
    neither a ContextVar nor a lock can be pickled.

    A trial error, and any error after a stop request, marks the task run in
    `tasks.expected_failures`, so that the command's console leaves out
    Prefect's error records of it. A retry starts unmarked.
    """
    task_run_id = str(current_task_run.id)
    clear_expected_failure(task_run_id)
    workers = _trial_workers.get()
    try:
        if workers is not None:
            return execute_trial_in_workers(workers, *arguments)
        with _in_process_trial_lock:
            return execute_trial(*arguments)
    except Exception as error:
        if isinstance(error, (TrialError, SearchInterruptedError)) or stop_requested():
            mark_expected_failure(task_run_id)
        raise
