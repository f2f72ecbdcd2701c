"""Reading what a flow run left behind: MLflow runs, Prefect task runs and logs."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from uuid import UUID

import pytest

from mlflow import MlflowClient
from mlflow.entities import Run
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import TaskRun

RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")


@contextlib.contextmanager
def tracking_at(uri: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point MLflow at `uri` through MLFLOW_TRACKING_URI and its process-wide URI.

    The process-wide URI is restored on exit, and `monkeypatch` restores the
    environment variable.
    """
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield uri
    finally:
        mlflow.set_tracking_uri(previous)


def experiment_runs(client: MlflowClient, experiment_name: str) -> list[Run]:
    experiment = client.get_experiment_by_name(experiment_name)
    assert experiment is not None
    return client.search_runs([experiment.experiment_id])


def split_runs(runs: list[Run]) -> tuple[list[Run], list[Run]]:
    """Return the parent runs and the child runs."""
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def trial_task_runs(flow_run_id: UUID) -> dict[str, TaskRun]:
    """Return the flow run's trial task runs by name (`trial-<number>`)."""
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return {t.name: t for t in task_runs if t.name.startswith("trial-")}


def table_artifact(flow_run_id: UUID) -> list[dict[str, object]]:
    """Return the rows of the flow run's only table artifact."""
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
            )
        )
    tables = [a for a in artifacts if a.type == "table"]
    assert len(tables) == 1
    data = tables[0].data
    return json.loads(data) if isinstance(data, str) else data


class _RecordList(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(level=logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def captured_run_logs() -> Iterator[list[logging.LogRecord]]:
    """Collect the records of Prefect's flow run and task run loggers."""
    records: list[logging.LogRecord] = []
    handler = _RecordList(records)
    loggers = [logging.getLogger(name) for name in RUN_LOGGERS]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def warnings_containing(records: list[logging.LogRecord], text: str) -> list[str]:
    """Return the WARNING messages among `records` that contain `text`."""
    messages = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    return [message for message in messages if text in message]
