"""Logging each trial's model in the background while the next trial trains.

Saving a Keras model and recording it as an MLflow logged model takes about
50 ms a trial, mostly Python that waits on the disk and the tracking store. A
trial that hands it to this process's upload thread returns at once. Its
child run stays RUNNING until the model is stored, then ends FINISHED, or
FAILED with the upload's error.

The thread is not a daemon: a worker process that exits finishes its
uploads first. The flow's process waits for its own with `wait_for_uploads`,
and `confirm_trial_runs` then reads from the store that every completed
trial's run ended FINISHED, whichever process logged it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from mlflow import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from tasks.results import TrialResult
from tasks.tracking import ERROR_TAG, end_run, upload_trial_model

logger = logging.getLogger(__name__)

# The most runs one search_runs call returns from a SQL store.
SEARCH_MAX_RESULTS = 50_000

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_pending: set[Future[None]] = set()


def upload_then_end_run(
    client: MlflowClient,
    model: Any,
    *,
    model_id: str,
    run_id: str,
    trial_number: int,
    sample_x: Any,
    best_epoch: int,
) -> None:
    """Store a trial's model, then end its run FINISHED, or FAILED if storing fails."""
    try:
        upload_trial_model(
            model,
            model_id=model_id,
            run_id=run_id,
            trial_number=trial_number,
            sample_x=sample_x,
            best_epoch=best_epoch,
        )
    except Exception as error:
        logger.error(
            "Storing the model of trial %d failed (run %s): %s", trial_number, run_id, error
        )
        end_run(client, run_id, "FAILED", error)
        raise
    end_run(client, run_id, "FINISHED")


def submit_upload(upload: Callable[[], None]) -> None:
    """Run `upload` on this process's upload thread, after the ones queued before."""
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="tuneflow-model-upload"
            )
        future = _executor.submit(upload)
        _pending.add(future)
    future.add_done_callback(_forget)


def _forget(future: Future[None]) -> None:
    with _lock:
        _pending.discard(future)


def wait_for_uploads() -> None:
    """Wait until every upload this process queued has ended, stored or failed."""
    with _lock:
        pending = list(_pending)
    for future in pending:
        # upload_then_end_run has logged the error and ended the run FAILED;
        # confirm_trial_runs reports it.
        future.exception()


def confirm_trial_runs(
    client: MlflowClient, parent_run_id: str, trials: list[TrialResult]
) -> list[TrialResult]:
    """Return the trials, with a completed trial whose run did not end FINISHED as failed.

    A run still RUNNING lost its upload with its process; it is ended FAILED.
    """
    parent = client.get_run(parent_run_id)
    runs = {
        run.info.run_id: run
        for run in client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}'",
            max_results=SEARCH_MAX_RESULTS,
        )
    }
    confirmed = []
    for trial in trials:
        run = runs.get(trial["run_id"] or "")
        if trial["status"] != "COMPLETED" or run is None or run.info.status == "FINISHED":
            confirmed.append(trial)
            continue
        reason = run.data.tags.get(ERROR_TAG, "its process ended first")
        message = (
            f"Trial {trial['number']} trained, but its model was not stored (run "
            f"{run.info.run_id} is {run.info.status}): {reason}"
        )
        logger.error("%s", message)
        if run.info.status == "RUNNING":
            end_run(client, run.info.run_id, "FAILED", RuntimeError(message))
        confirmed.append(
            TrialResult(
                {**trial, "status": "FAILED", "model_uri": None, "message": message}
            )
        )
    return confirmed
