"""The trial task: one trial as a Prefect task run named `trial-<number>`.

The task takes only small serializable inputs and returns a small dict, so the
same task can run in another process or on another machine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from prefect import Task, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.client.schemas.objects import TaskRun
from prefect.runtime import task_run as current_task_run
from prefect.states import State

from tasks.data import DataRef
from tasks.results import TrialResult
from tasks.spec import TuningSpec
from tasks.trial_execution import TrialError, execute_trial
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
    `tuner_core.FailedTrialError`. Any other error may be transient.
    """
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
) -> TrialResult:
    """Train one configuration and record it as a child run of the search.

    Inside `running_in_workers`, the training runs in a worker process and this
    task waits for it. Each retry of the task is a new attempt with its own
    child run. Set the number of retries with `run_trial.with_options`.
    """
    run_logger = get_run_logger()
    attempt = current_task_run.get_run_count()
    plan = (plan or TrialPlan()).model_copy(update={"attempt": max(attempt, 1)})
    arguments = (
        trial_number, values, data_ref, spec, parent_run_id, tracking_uri, plan
    )
    workers = _trial_workers.get()
    if workers is None:
        result = execute_trial(*arguments)
    else:
        result = workers.submit(execute_trial, *arguments).result()
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
