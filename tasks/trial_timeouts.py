"""MLflow records of a trial that ran past `trial_timeout_seconds`.

A timed-out trial's run ends FAILED with the tags below. Training stops at
its next batch (`tuner_core.TrialDeadline`), and a worker process that does
not stop in time is killed (`tasks.workers`). The tag `tuneflow.timeout_stop`
records which of the two stopped the trial.
"""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.entities import RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from tasks.spec import TuningSpec
from tasks.tracking import TRIAL_NUMBER_TAG
from tasks.workers import report_call_start
from tuner_core import TrialDeadline

FAILURE_REASON_TAG = "tuneflow.failure_reason"
TIMEOUT_SECONDS_TAG = "tuneflow.trial_timeout_seconds"
TIMEOUT_STOP_TAG = "tuneflow.timeout_stop"
TIMEOUT_REASON = "timeout"
# Values of TIMEOUT_STOP_TAG.
STOPPED_IN_TRAINING = "training_callback"
STOPPED_BY_KILL = "worker_process_killed"
ATTEMPT_TAG = "tuneflow.attempt"


def trial_deadline(spec: TuningSpec) -> TrialDeadline | None:
    """Start the clock of a trial under the spec's limit, or return None without one.

    In a worker process, the hard limit of `tasks.workers` restarts with it.
    """
    if spec.trial_timeout_seconds is None:
        return None
    report_call_start()
    return TrialDeadline(spec.trial_timeout_seconds)


def log_timeout(
    client: MlflowClient, run_id: str, timeout_seconds: float, stopped_by: str
) -> None:
    """Tag a trial run as timed out, with its limit and what stopped it."""
    client.log_batch(
        run_id,
        tags=[
            RunTag(FAILURE_REASON_TAG, TIMEOUT_REASON),
            RunTag(TIMEOUT_SECONDS_TAG, f"{timeout_seconds:g}"),
            RunTag(TIMEOUT_STOP_TAG, stopped_by),
        ],
    )


def find_running_trial_run(
    client: MlflowClient, parent_run_id: str, trial_number: int, attempt: int
) -> str | None:
    """Return the id of a trial attempt's run that is still RUNNING, or None.

    A killed worker process leaves its trial's run RUNNING, and only the
    process knew the run's id.
    """
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    runs = client.search_runs(
        [experiment_id],
        filter_string=(
            f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}' "
            f"and tags.`{TRIAL_NUMBER_TAG}` = '{trial_number}' "
            f"and tags.`{ATTEMPT_TAG}` = '{attempt}' "
            "and attributes.status = 'RUNNING'"
        ),
    )
    return runs[0].info.run_id if runs else None
