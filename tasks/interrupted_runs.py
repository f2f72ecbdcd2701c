"""Stopping training at a stop request, and ending interrupted runs as KILLED.

A trial stopped by the request ends its run KILLED with the tag
`tuneflow.status` = INTERRUPTED and the reason in `tuneflow.error`, as a
resumed search ends the runs of a search that a crash or a kill left
RUNNING. A rerun of a spec with a `project_name` runs those trials again.
"""

from __future__ import annotations

import logging
from typing import Any

import keras
from mlflow import MlflowClient
from mlflow.entities import RunTag

from tasks.project import INTERRUPTED_STATUS
from tasks.stop_request import SearchInterruptedError, stop_requested
from tasks.tracking import (
    ERROR_TAG,
    STATUS_TAG,
    fail_pending_models,
    running_trial_runs,
)

logger = logging.getLogger(__name__)

USER_INTERRUPT_MESSAGE = (
    "Interrupted by the user: the search stopped at a SIGINT (Ctrl-C) or SIGTERM "
    "while this run was running."
)


class StopOnRequest(keras.callbacks.Callback):
    """Keras callback that raises `SearchInterruptedError` once a stop is requested.

    It checks when training and each epoch begin and end, and after every
    training and validation batch. Keras may report a batch end one batch
    late, so training stops within about two batches of the request. Put it
    before callbacks that log an epoch's metrics, so that an epoch that ends
    after the request is not logged.
    """

    def check(self, stage: str) -> None:
        if not stop_requested():
            return
        if self._model is not None:
            self._model.stop_training = True
        raise SearchInterruptedError(
            f"Training stopped {stage}, because the user interrupted the search."
        )

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.check("before its first epoch")

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.check(f"before epoch {epoch}")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.check(f"at the end of epoch {epoch}")

    # The *_begin hooks, because a *_batch_end hook makes Keras convert each
    # batch's metrics to Python numbers (see tuner_core's TrialDeadline).
    def on_train_batch_begin(
        self, batch: int, logs: dict[str, Any] | None = None
    ) -> None:
        self.check(f"before batch {batch}")

    def on_test_batch_begin(
        self, batch: int, logs: dict[str, Any] | None = None
    ) -> None:
        self.check("while validating")


def end_interrupted_run(client: MlflowClient, run_id: str) -> None:
    """End a run KILLED, tagged as interrupted by the user."""
    client.log_batch(
        run_id,
        tags=[
            RunTag(STATUS_TAG, INTERRUPTED_STATUS),
            RunTag(ERROR_TAG, USER_INTERRUPT_MESSAGE),
        ],
    )
    fail_pending_models(client, run_id)
    client.set_terminated(run_id, status="KILLED")


def end_interrupted_search(client: MlflowClient, search_run_id: str) -> list[str]:
    """End a search run and its trial runs still RUNNING as KILLED; return the ids."""
    search_run = client.get_run(search_run_id)
    run_ids = running_trial_runs(client, search_run)
    if search_run.info.status == "RUNNING":
        run_ids.append(search_run_id)
    for run_id in run_ids:
        end_interrupted_run(client, run_id)
        logger.info("Ended run %s as KILLED: %s", run_id, USER_INTERRUPT_MESSAGE)
    return run_ids
