"""The tuning flow end to end, on Prefect's test backend and a real MLflow store."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

import mlflow
import mlflow.tensorflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Run
from pipeline_runs import captured_run_logs
from pipeline_specs import write_tiny_spec
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
)

from flows.tuning import SearchFailedError, tune_flow, tune_spec_flow
from tasks.data import load_dataset, make_data_ref
from tasks.results import SearchResult
from tasks.spec import load_spec, parse_spec

pytestmark = pytest.mark.usefixtures("prefect_backend")

PER_EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


def experiment_runs(client: MlflowClient, experiment_name: str) -> list[Run]:
    experiment = client.get_experiment_by_name(experiment_name)
    assert experiment is not None
    return client.search_runs([experiment.experiment_id])


def split_runs(runs: list[Run]) -> tuple[list[Run], list[Run]]:
    """Return the parent runs and the child runs."""
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return parents, children


def test_flow_tracks_every_trial(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    spec_path = write_tiny_spec(tmp_path, digits_npz, experiment="flow", max_trials=3)
    spec = load_spec(spec_path)

    state = tune_flow(str(spec_path), return_state=True)
    result: SearchResult = state.result()

    client = MlflowClient(tracking_uri)
    parents, children = split_runs(experiment_runs(client, "flow"))
    assert [p.info.run_id for p in parents] == [result.parent_run_id]
    assert parents[0].info.status == "FINISHED"
    assert len(children) == 3
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {
        result.parent_run_id
    }
    artifacts = {a.path for a in client.list_artifacts(result.parent_run_id)}
    assert artifacts == {"flow.toml", "search_space.txt"}

    dataset = load_dataset(make_data_ref(spec.data, spec.seed))
    for trial in result.trials:
        run = client.get_run(trial["run_id"])
        assert run.info.status == "FINISHED"
        assert run.info.run_name == f"trial-{trial['number']}"
        assert run.data.params == {
            k: str(v) for k, v in trial["hyperparameters"].items()
        }
        for metric in PER_EPOCH_METRICS:
            history = client.get_metric_history(trial["run_id"], metric)
            assert [m.step for m in history] == [0, 1], metric

        model = mlflow.tensorflow.load_model(trial["model_uri"])
        evaluated = model.evaluate(
            dataset.x_val, dataset.y_val, verbose=0, return_dict=True
        )
        assert evaluated["accuracy"] == pytest.approx(trial["score"], abs=1e-6)

    best = result.best_trial
    assert best is not None
    assert best["score"] == max(t["score"] for t in result.trials)
    champion = client.get_model_version_by_alias("flow-model", "champion")
    assert champion.run_id == best["run_id"]
    assert result.registered_model is not None
    assert result.registered_model.version == str(champion.version)

    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    assert trial_task_names(flow_run_id) == ["trial-0", "trial-1", "trial-2"]
    table = trials_table(flow_run_id)
    ranked = sorted(result.trials, key=lambda t: (-t["score"], t["number"]))
    assert [row["rank"] for row in table] == [1, 2, 3]
    assert [row["trial"] for row in table] == [t["number"] for t in ranked]
    assert [row["mlflow_run_id"] for row in table] == [t["run_id"] for t in ranked]


def trial_task_names(flow_run_id: UUID) -> list[str]:
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return sorted(t.name for t in task_runs if t.name.startswith("trial-"))


def trials_table(flow_run_id: UUID) -> list[dict[str, object]]:
    import json

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


def test_missing_objective_fails_search(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment="no-metric",
        objective='{name = "val_auc", direction = "max"}',
    )

    with pytest.raises(
        SearchFailedError,
        match=r"after trial 0 failed .*Metrics reported: \['accuracy', 'loss', "
        r"'val_accuracy', 'val_loss'\]",
    ):
        tune_flow(str(spec_path))

    runs = experiment_runs(MlflowClient(tracking_uri), "no-metric")
    parents, children = split_runs(runs)
    assert [r.info.status for r in runs if r.info.status == "RUNNING"] == []
    assert [p.info.status for p in parents] == ["FAILED"]
    assert [c.info.status for c in children] == ["FAILED"]


def test_consecutive_failures_stop_search(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment="failing-fit",
        hypermodel="hypermodels:FailingFitModel",
        max_trials=5,
    )

    with pytest.raises(
        SearchFailedError, match=r"(?s)3 failure\(s\) in a row.*training diverged"
    ):
        tune_flow(str(spec_path))

    runs = experiment_runs(MlflowClient(tracking_uri), "failing-fit")
    parents, children = split_runs(runs)
    assert len(children) == 3
    assert {r.info.status for r in runs} == {"FAILED"}


def test_spec_flow_stops_when_space_exhausted(
    digits_npz: Path, tracking_uri: str
) -> None:
    spec = parse_spec(
        {
            "hypermodel": "hypermodels:build_tiny_model",
            "objective": "val_loss",
            "max_trials": 5,
            "seed": 1,
            "tune_new_entries": False,
            "hyperparameters": [
                {
                    "name": "units",
                    "type": "Int",
                    "min_value": 8,
                    "max_value": 16,
                    "step": 8,
                }
            ],
            "data": {"path": str(digits_npz)},
            "mlflow": {"experiment": "exhausted"},
        }
    )

    result = tune_spec_flow(spec)

    assert result.stop_message == "search space exhausted after 2 unique configurations"
    assert sorted(t["hyperparameters"]["units"] for t in result.trials) == [8, 16]
    assert result.registered_model is None
    parent = MlflowClient(tracking_uri).get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["tuneflow.best_run_id"] == result.best_trial["run_id"]


def test_concurrent_trials_in_worker_processes(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment="workers",
        max_trials=2,
        epochs=1,
        extra="concurrency = 2",
    )

    result = tune_flow(str(spec_path))

    runs = experiment_runs(MlflowClient(tracking_uri), "workers")
    parents, children = split_runs(runs)
    assert [t["status"] for t in result.trials] == ["COMPLETED", "COMPLETED"]
    assert len(children) == 2
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_challenger_search_says_why_unregistered(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    spec_path = write_tiny_spec(
        tmp_path, digits_npz, experiment="challenger", max_trials=1, epochs=1
    )
    text = spec_path.read_text(encoding="utf-8").replace(
        'registered_model_name = "challenger-model"',
        'tags = { "tuneflow.purpose" = "challenger" }',
    )
    spec_path.write_text(text, encoding="utf-8")

    with captured_run_logs() as records:
        result = tune_flow(str(spec_path))

    assert result.registered_model is None
    messages = [record.getMessage() for record in records]
    assert any("This challenger search registers no model" in m for m in messages)
    assert not any("sets no [mlflow] registered_model_name" in m for m in messages)
