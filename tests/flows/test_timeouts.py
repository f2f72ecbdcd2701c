"""Trial time limits through the flow: a trial stops and fails, the search goes on."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.entities import Run
from pipeline_runs import experiment_runs, split_runs, trial_task_runs
from pipeline_specs import write_tiny_spec
from prefect.client.schemas.objects import StateType
from rich.console import Console
from rich.progress import Progress

import tasks.workers
from flows.cli import ProgressListener
from flows.tuning import tune_flow

pytestmark = pytest.mark.usefixtures("prefect_backend")

SLOW_UNITS = 8
HANG_UNITS = 24
# Training checks the deadline before every batch, so only the batch running
# when the limit passed may end after it. The run's start time, which the
# count measures from, comes a few milliseconds before the deadline's, so allow
# one more.
MAX_BATCHES_AFTER_LIMIT = 2


def units_grid(num_values: int, extra: str) -> str:
    """Return top-level keys and a table that grid-search `units` from 8 by 8."""
    return f"""oracle = "grid"
tune_new_entries = false
{extra}

[[hyperparameters]]
name = "units"
type = "Int"
min_value = 8
max_value = {8 * num_values}
step = 8
"""


def read_batch_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def runs_by_name(tracking_uri: str, experiment: str) -> dict[str, Run]:
    _, children = split_runs(experiment_runs(MlflowClient(tracking_uri), experiment))
    return {child.info.run_name: child for child in children}


def batches_after_limit(log: list[dict[str, Any]], run: Run, limit: float) -> int:
    """Return how many batches of the slow trial ended after its time limit."""
    limit_passed = run.info.start_time / 1000 + limit
    return sum(
        1
        for entry in log
        if entry["units"] == SLOW_UNITS
        and entry["event"] == "batch"
        and entry["time"] > limit_passed
    )


@pytest.fixture
def batch_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the slow hypermodel at a batch log, which worker processes inherit."""
    path = tmp_path / "batches.jsonl"
    path.touch()
    monkeypatch.setenv("TUNEFLOW_TEST_BATCH_LOG", str(path))
    monkeypatch.setenv("TUNEFLOW_TEST_SLOW_UNITS", str(SLOW_UNITS))
    monkeypatch.delenv("TUNEFLOW_TEST_HANG_UNITS", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return path


def test_timeout_in_flow_process(
    tmp_path: Path, digits_npz: Path, tracking_uri: str, batch_log: Path
) -> None:
    limit = 12.0
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment="timeout-inline",
        max_trials=2,
        epochs=30,
        hypermodel="hypermodels:SlowFitModel",
        extra=units_grid(2, f"trial_timeout_seconds = {limit}"),
    )

    state = tune_flow(str(spec_path), return_state=True)

    assert state.type == StateType.COMPLETED
    result = state.result()
    timed_out, completed = result.trials
    assert timed_out["status"] == "FAILED"
    assert timed_out["failure_reason"] == "timeout"
    assert "Trial 0 timed out" in timed_out["message"]
    assert completed["status"] == "COMPLETED"
    assert result.best_trial is not None
    assert result.best_trial["number"] == 1

    runs = runs_by_name(tracking_uri, "timeout-inline")
    run = runs["trial-0"]
    assert run.info.status == "FAILED"
    assert run.data.tags["tuneflow.failure_reason"] == "timeout"
    assert run.data.tags["tuneflow.trial_timeout_seconds"] == "12"
    assert run.data.tags["tuneflow.timeout_stop"] == "training_callback"
    assert "TrialTimeoutError" in run.data.tags["tuneflow.error"]
    assert runs["trial-1"].info.status == "FINISHED"

    log = read_batch_log(batch_log)
    slow_batches = [
        e for e in log if e["units"] == SLOW_UNITS and e["event"] == "batch"
    ]
    # 30 epochs of 5 batches would take 15 s at 0.1 s a batch.
    assert 0 < len(slow_batches) < 30 * 5
    assert batches_after_limit(log, run, limit) <= MAX_BATCHES_AFTER_LIMIT
    time.sleep(0.5)
    assert len(read_batch_log(batch_log)) == len(log)

    task_runs = trial_task_runs(state.state_details.flow_run_id)
    assert task_runs["trial-0"].state_type == StateType.FAILED
    assert task_runs["trial-0"].state_name == "TimedOut"
    assert task_runs["trial-1"].state_type == StateType.COMPLETED

    console = Console(record=True, width=400)
    listener = ProgressListener(Progress(console=console), "val_accuracy", 2)
    listener.trial_finished(timed_out)
    line = console.export_text()
    assert line.startswith("Trial 0 timed out (MLflow run ")
    assert line.count("timed out") == 1


def test_timeouts_in_worker_processes(
    tmp_path: Path,
    digits_npz: Path,
    tracking_uri: str,
    batch_log: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limit = 12.0
    grace = 2.0
    monkeypatch.setattr(tasks.workers, "DEFAULT_STOP_GRACE_SECONDS", grace)
    monkeypatch.setenv("TUNEFLOW_TEST_HANG_UNITS", str(HANG_UNITS))
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment="timeout-workers",
        max_trials=4,
        epochs=30,
        hypermodel="hypermodels:SlowFitModel",
        extra=units_grid(4, f"trial_timeout_seconds = {limit}\nconcurrency = 2"),
    )

    state = tune_flow(str(spec_path), return_state=True)

    # Trial 0 trains slowly and trial 2 hangs in its first step. Trials 1 and
    # 3 train alongside them in the other worker process.
    assert state.type == StateType.COMPLETED
    result = state.result()
    statuses = [t["status"] for t in result.trials]
    assert statuses == ["FAILED", "COMPLETED", "FAILED", "COMPLETED"]
    assert result.trials[0]["failure_reason"] == "timeout"
    assert result.trials[2]["failure_reason"] == "timeout"
    assert "WorkerTimeoutError" in result.trials[2]["message"]

    runs = runs_by_name(tracking_uri, "timeout-workers")
    slow_run = runs["trial-0"]
    assert slow_run.info.status == "FAILED"
    assert slow_run.data.tags["tuneflow.failure_reason"] == "timeout"
    assert slow_run.data.tags["tuneflow.trial_timeout_seconds"] == "12"
    assert slow_run.data.tags["tuneflow.timeout_stop"] == "training_callback"
    assert "tuneflow.cuda_visible_devices" not in slow_run.data.tags
    hung_run = runs["trial-2"]
    assert hung_run.info.status == "FAILED"
    assert hung_run.data.tags["tuneflow.failure_reason"] == "timeout"
    assert hung_run.data.tags["tuneflow.timeout_stop"] == "worker_process_killed"
    assert "was killed" in hung_run.data.tags["tuneflow.error"]
    # The hung step sleeps 60 s, but the kill comes at the limit plus the grace.
    hung_seconds = (hung_run.info.end_time - hung_run.info.start_time) / 1000
    assert limit + grace <= hung_seconds < 60
    client = MlflowClient(tracking_uri)
    for name in ("trial-1", "trial-3"):
        assert runs[name].info.status == "FINISHED"
        history = client.get_metric_history(runs[name].info.run_id, "val_accuracy")
        assert [m.step for m in history] == [0, 1]

    log = read_batch_log(batch_log)
    slow_pids = {e["pid"] for e in log if e["units"] == SLOW_UNITS}
    hung_pids = {e["pid"] for e in log if e["units"] == HANG_UNITS}
    assert len(slow_pids) == 1
    assert len(hung_pids) == 1
    assert slow_pids != hung_pids
    assert not [e for e in log if e["units"] == HANG_UNITS and e["event"] == "batch"]
    # The search ran for seconds after trial 0 stopped, so a slow batch after
    # the limit would show that trial 0 kept training in the background.
    assert batches_after_limit(log, slow_run, limit) <= MAX_BATCHES_AFTER_LIMIT
    assert runs["trial-3"].info.start_time > slow_run.info.end_time

    task_runs = trial_task_runs(state.state_details.flow_run_id)
    assert task_runs["trial-0"].state_name == "TimedOut"
    assert task_runs["trial-1"].state_type == StateType.COMPLETED
    assert task_runs["trial-2"].state_name == "TimedOut"
    assert task_runs["trial-3"].state_type == StateType.COMPLETED
