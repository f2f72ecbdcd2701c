"""Several executions per trial, and the optimizer a compile override imposes."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient
from pipeline_runs import captured_run_logs, warnings_containing
from pipeline_specs import write_tiny_spec

from flows.tuning import tune_flow

pytestmark = pytest.mark.usefixtures("prefect_backend")

RMSPROP_OVERRIDE = """
[compile]
optimizer = { class_name = "RMSprop", config = { learning_rate = 0.005 } }
"""


def test_executions_average_scores(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment="executions",
        max_trials=2,
        epochs=1,
        extra="executions_per_trial = 2",
    )

    result = tune_flow(str(spec_path))

    client = MlflowClient(tracking_uri)
    for trial in result.trials:
        scores = trial["execution_scores"]
        assert len(scores) == 2
        assert trial["score"] == pytest.approx(sum(scores) / 2)
        run = client.get_run(trial["run_id"])
        assert run.data.metrics["best_val_accuracy"] == pytest.approx(trial["score"])
        history = client.get_metric_history(trial["run_id"], "execution_score")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == [0, 1]
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == (
            pytest.approx(scores)
        )
        assert run.data.tags["tuneflow.best_execution"] in ("0", "1")
        loss_history = client.get_metric_history(trial["run_id"], "loss")
        assert [m.step for m in loss_history] == [0]
    parent = client.get_run(result.parent_run_id)
    assert parent.data.params["executions_per_trial"] == "2"


def test_optimizer_override_recorded(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment="optimizer-override",
        max_trials=2,
        epochs=1,
        hypermodel="hypermodels:build_optimizer_choice_model",
        extra=RMSPROP_OVERRIDE,
    )

    with captured_run_logs() as records:
        result = tune_flow(str(spec_path))

    no_effect = warnings_containing(records, "have no effect")
    assert len(no_effect) == 1
    assert "'optimizer' ([compile] optimizer)" in no_effect[0]
    assert "'learning_rate' ([compile] optimizer)" in no_effect[0]
    client = MlflowClient(tracking_uri)
    parent = client.get_run(result.parent_run_id)
    overridden = parent.data.tags["tuneflow.overridden_hyperparameters"]
    assert overridden == "optimizer, learning_rate"
    for trial in result.trials:
        assert trial["optimizer"] == {"class_name": "RMSprop", "learning_rate": 0.005}
        tags = client.get_run(trial["run_id"]).data.tags
        assert tags["tuneflow.optimizer"] == "RMSprop"
        assert tags["tuneflow.learning_rate"] == "0.005"
