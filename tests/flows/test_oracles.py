"""Every oracle through the flow: conditional spaces, options, Hyperband budgets."""

from __future__ import annotations

from pathlib import Path

import mlflow.tensorflow
import numpy as np
import pytest
from hypermodels import RecordingFitModel
from mlflow import MlflowClient
from pipeline_runs import (
    captured_run_logs,
    experiment_runs,
    split_runs,
    warnings_containing,
)
from pipeline_specs import write_tiny_spec
from search_spaces import expected_active

from flows.tuning import tune_flow

pytestmark = pytest.mark.usefixtures("prefect_backend")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# The spec tailors the conditional build function: u1 keeps its scope under
# n_dense through parent_name and parent_values.
CONDITIONAL_ENTRIES = """
[[hyperparameters]]
name = "n_dense"
type = "Int"
min_value = 0
max_value = 2

[[hyperparameters]]
name = "u1"
type = "Int"
min_value = 16
max_value = 32
step = 16
parent_name = "n_dense"
parent_values = [1, 2]
"""

ORACLE_SETTINGS = {
    "random": ('oracle = "random"', {}),
    "grid": ('oracle = "grid"', {}),
    "bayesian": (
        'oracle = "bayesian"\nnum_initial_points = 2\nalpha = 0.001\nbeta = 2.0',
        {"num_initial_points": "2", "alpha": "0.001", "beta": "2.0"},
    ),
    "hyperband": (
        'oracle = "hyperband"\nmax_epochs = 2\nfactor = 2',
        {"max_epochs": "2", "factor": "2"},
    ),
}


@pytest.mark.parametrize("oracle", list(ORACLE_SETTINGS))
def test_conditional_trials_record_active_set(
    oracle: str,
    tmp_path: Path,
    digits_npz: Path,
    tracking_uri: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLES))
    settings, expected_params = ORACLE_SETTINGS[oracle]
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment=f"conditional-{oracle}",
        max_trials=3,
        epochs=1,
        hypermodel="conditional_model:build_model",
        extra=settings + "\n" + CONDITIONAL_ENTRIES,
    )

    result = tune_flow(str(spec_path))

    client = MlflowClient(tracking_uri)
    assert [t["status"] for t in result.trials] == ["COMPLETED"] * 3
    for trial in result.trials:
        values = trial["hyperparameters"]
        assert set(values) == expected_active(values), values
        run = client.get_run(trial["run_id"])
        assert run.data.params == {name: str(value) for name, value in values.items()}
        if "u1" in values:
            assert values["u1"] in (16, 32)
    parent = client.get_run(result.parent_run_id)
    assert parent.data.params["oracle"] == oracle
    for name, value in expected_params.items():
        assert parent.data.params[name] == value


def test_hyperband_continues_from_parent_state(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    RecordingFitModel.fits.clear()
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment="hyperband",
        max_trials=3,
        epochs=5,
        hypermodel="hypermodels:RecordingFitModel",
        extra='oracle = "hyperband"\nmax_epochs = 2\nfactor = 2',
    )

    with captured_run_logs() as records:
        result = tune_flow(str(spec_path))

    ignored = warnings_containing(records, "Hyperband ignores [fit] epochs = 5")
    assert len(ignored) == 1
    first, second, continued = result.trials
    first_round = {"epochs": 1, "initial_epoch": 0, "bracket": 1, "round": 0}
    assert first["schedule"] == first_round
    assert second["schedule"] == first_round
    parent = min((first, second), key=lambda t: (-t["score"], t["number"]))
    assert continued["schedule"] == {
        "epochs": 2,
        "initial_epoch": 1,
        "bracket": 1,
        "round": 1,
        "continued_trial": parent["number"],
    }
    assert continued["hyperparameters"] == parent["hyperparameters"]

    fits = RecordingFitModel.fits
    assert [(f["epochs"], f["initial_epoch"]) for f in fits] == [(1, 0), (1, 0), (2, 1)]
    parent_model = mlflow.tensorflow.load_model(parent["model_uri"])
    parent_weights = parent_model.get_weights()
    assert len(fits[2]["weights"]) == len(parent_weights)
    for start, logged in zip(fits[2]["weights"], parent_weights, strict=True):
        np.testing.assert_array_equal(start, logged)
    # The logged model carries its optimizer's state, and the continued
    # trial's optimizer starts from it rather than from zero.
    parent_optimizer = [v.numpy() for v in parent_model.optimizer.variables]
    assert int(parent_optimizer[0]) > 0
    assert fits[2]["optimizer"] is not None
    assert len(fits[2]["optimizer"]) == len(parent_optimizer)
    for start, logged in zip(fits[2]["optimizer"], parent_optimizer, strict=True):
        np.testing.assert_array_equal(start, logged)

    client = MlflowClient(tracking_uri)
    continued_run = client.get_run(continued["run_id"])
    assert continued_run.data.tags["tuneflow.epochs"] == "2"
    assert continued_run.data.tags["tuneflow.initial_epoch"] == "1"
    assert continued_run.data.tags["tuneflow.continued_trial"] == str(parent["number"])
    assert continued_run.data.tags["tuneflow.continued_run_id"] == parent["run_id"]
    for trial, steps in ((first, [0]), (second, [0]), (continued, [1])):
        history = client.get_metric_history(trial["run_id"], "val_accuracy")
        assert [m.step for m in history] == steps
    assert continued["best_epoch"] == 1
    assert continued["metrics"]["val_accuracy"] == pytest.approx(continued["score"])

    parents, children = split_runs(experiment_runs(client, "hyperband"))
    assert parents[0].data.params["max_epochs"] == "2"
    assert parents[0].data.params["epochs"] == "None"
    assert len(children) == 3
