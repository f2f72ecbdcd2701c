"""Failed trials through the flow: retries, FailedTrialError, the failure limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypermodels import RejectingFitModel
from mlflow import MlflowClient
from pipeline_runs import experiment_runs, split_runs, table_artifact, trial_task_runs
from pipeline_specs import write_tiny_spec
from prefect.client.schemas.objects import StateType

from flows.tuning import SearchFailedError, tune_flow

pytestmark = pytest.mark.usefixtures("prefect_backend")


def units_grid(max_value: int) -> str:
    """Return top-level keys and a table that grid-search `units` from 8 by 8."""
    return f"""oracle = "grid"
tune_new_entries = false

[[hyperparameters]]
name = "units"
type = "Int"
min_value = 8
max_value = {max_value}
step = 8
"""


def test_failed_trial_error_skips_retries(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    RejectingFitModel.attempts.clear()
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment="retries",
        max_trials=2,
        epochs=1,
        hypermodel="hypermodels:RejectingFitModel",
        extra="max_retries_per_trial = 1\n" + units_grid(16),
    )

    state = tune_flow(str(spec_path), return_state=True)
    result = state.result()

    rejected, retried = result.trials
    assert dict(RejectingFitModel.attempts) == {8: 1, 16: 2}
    assert rejected["status"] == "FAILED"
    assert rejected["hyperparameters"] == {"units": 8}
    assert "FailedTrialError: 8 units never fit" in rejected["message"]
    assert retried["status"] == "COMPLETED"
    assert result.best_trial is not None
    assert result.best_trial["number"] == 1

    client = MlflowClient(tracking_uri)
    _, children = split_runs(experiment_runs(client, "retries"))
    by_attempt = {
        (c.info.run_name, c.data.tags["tuneflow.attempt"]): c for c in children
    }
    assert set(by_attempt) == {("trial-0", "1"), ("trial-1", "1"), ("trial-1", "2")}
    rejected_run = by_attempt[("trial-0", "1")]
    assert rejected_run.info.status == "FAILED"
    assert rejected_run.data.params == {"units": "8"}
    assert "FailedTrialError" in rejected_run.data.tags["tuneflow.error"]
    first_attempt = by_attempt[("trial-1", "1")]
    assert first_attempt.info.status == "FAILED"
    assert "transient" in first_attempt.data.tags["tuneflow.error"]
    assert by_attempt[("trial-1", "2")].info.status == "FINISHED"
    assert by_attempt[("trial-1", "2")].info.run_id == retried["run_id"]

    task_runs = trial_task_runs(state.state_details.flow_run_id)
    assert task_runs["trial-0"].state_type == StateType.FAILED
    assert task_runs["trial-0"].run_count == 1
    assert task_runs["trial-1"].state_type == StateType.COMPLETED
    assert task_runs["trial-1"].run_count == 2


def test_failure_limit_lists_failed_values(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment="failure-limit",
        max_trials=3,
        epochs=1,
        hypermodel="hypermodels:FailingWideModel",
        extra="max_consecutive_failed_trials = 2\n" + units_grid(24),
    )

    state = tune_flow(str(spec_path), return_state=True)

    assert state.type == StateType.FAILED
    error = state.result(raise_on_failure=False)
    assert isinstance(error, SearchFailedError)
    message = str(error)
    assert "max_consecutive_failed_trials=2" in message
    assert "trial 1 with {'units': 16}: " in message
    assert "16 units diverged" in message
    assert "trial 2 with {'units': 24}: " in message
    assert "24 units diverged" in message
    assert [t["status"] for t in error.trials] == ["COMPLETED", "FAILED", "FAILED"]
    completed = error.trials[0]
    assert completed["model_uri"] is not None

    client = MlflowClient(tracking_uri)
    parents, children = split_runs(experiment_runs(client, "failure-limit"))
    assert [p.info.status for p in parents] == ["FAILED"]
    statuses = {c.info.run_name: c.info.status for c in children}
    assert statuses == {"trial-0": "FINISHED", "trial-1": "FAILED", "trial-2": "FAILED"}
    completed_params = client.get_run(completed["run_id"]).data.params
    values = completed["hyperparameters"]
    assert completed_params == {name: str(value) for name, value in values.items()}
    assert completed_params["units"] == "8"
    for child in children:
        if child.info.status == "FAILED":
            assert "diverged" in child.data.tags["tuneflow.error"]

    flow_run_id = state.state_details.flow_run_id
    task_runs = trial_task_runs(flow_run_id)
    assert task_runs["trial-0"].state_type == StateType.COMPLETED
    assert task_runs["trial-1"].state_type == StateType.FAILED
    assert task_runs["trial-2"].state_type == StateType.FAILED
    table = table_artifact(flow_run_id)
    ranks = [(row["trial"], row["rank"]) for row in table]
    assert ranks == [(0, 1), (1, None), (2, None)]
