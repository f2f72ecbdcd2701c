"""NaN objectives through the flow: ranked last, tagged, never registered."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from pipeline_runs import table_artifact
from pipeline_specs import write_tiny_spec

from flows.tuning import tune_flow

pytestmark = pytest.mark.usefixtures("prefect_backend")

# Grid search tries the default poison = true first, so the NaN trial is trial 0.
POISON_GRID = 'oracle = "grid"'
POISON_FIXED = """oracle = "grid"

[[hyperparameters]]
name = "poison"
type = "Fixed"
value = true
"""


@pytest.mark.parametrize("direction", ["min", "max"])
def test_nan_trial_ranks_last(
    direction: str, tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment=f"nan-{direction}",
        max_trials=2,
        epochs=1,
        hypermodel="hypermodels:build_nan_model",
        objective=f'{{name = "val_loss", direction = "{direction}"}}',
        extra=POISON_GRID,
    )

    state = tune_flow(str(spec_path), return_state=True)
    result = state.result()

    poisoned, finite = result.trials
    assert poisoned["hyperparameters"] == {"poison": True}
    assert math.isnan(poisoned["score"])
    assert math.isfinite(finite["score"])
    assert result.best_trial is not None
    assert result.best_trial["number"] == finite["number"]

    client = MlflowClient(tracking_uri)
    poisoned_tags = client.get_run(poisoned["run_id"]).data.tags
    assert poisoned_tags["tuneflow.objective_nan"] == "true"
    assert "tuneflow.objective_nan" not in client.get_run(finite["run_id"]).data.tags
    champion = client.get_model_version_by_alias(f"nan-{direction}-model", "champion")
    assert champion.run_id == finite["run_id"]

    table = table_artifact(state.state_details.flow_run_id)
    assert [(row["rank"], row["trial"]) for row in table] == [(1, 1), (2, 0)]
    assert table[1]["val_loss"] == "NaN"


def test_all_nan_search_returns_trials(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment="all-nan",
        max_trials=2,
        epochs=1,
        hypermodel="hypermodels:build_nan_model",
        objective='"val_loss"',
        extra=POISON_FIXED,
    )

    state = tune_flow(str(spec_path), return_state=True)
    result = state.result()

    assert state.is_completed()
    assert len(result.trials) == 1
    assert result.trials[0]["status"] == "COMPLETED"
    assert math.isnan(result.trials[0]["score"])
    assert result.best_trial is None
    assert result.registered_model is None

    client = MlflowClient(tracking_uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert "scored val_loss = NaN" in parent.data.tags["tuneflow.no_best_trial"]
    assert "tuneflow.best_run_id" not in parent.data.tags
    with pytest.raises(MlflowException):
        client.get_registered_model("all-nan-model")
