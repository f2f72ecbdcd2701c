"""The `tuneflow` command line on a tiny spec, run in-process with typer's CliRunner."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from pipeline_specs import write_tiny_spec
from typer.testing import CliRunner

from flows.cli import EXIT_INVALID_SPEC, app

runner = CliRunner()


@pytest.fixture(autouse=True)
def restore_environment() -> Iterator[None]:
    """Undo the environment defaults the CLI sets in this process."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.usefixtures("prefect_backend")
def test_tune_prints_best_trial(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    spec_path = write_tiny_spec(tmp_path, digits_npz, experiment="cli", max_trials=2)

    outcome = runner.invoke(
        app, ["tune", str(spec_path), "--tracking-uri", tracking_uri]
    )

    assert outcome.exit_code == 0, outcome.output
    assert "Prefect API: http://127.0.0.1:" in outcome.output
    champion = MlflowClient(tracking_uri).get_model_version_by_alias(
        "cli-model", "champion"
    )
    assert "Trial 0: val_accuracy=" in outcome.output
    assert "Trial 1: val_accuracy=" in outcome.output
    assert "Best trial:" in outcome.output
    assert f"MLflow run id: {champion.run_id}" in outcome.output
    assert "Objective: val_accuracy (max) = " in outcome.output
    assert f"mlflow ui --backend-store-uri {tracking_uri}" in outcome.output


def test_tune_rejects_bad_spec(tmp_path: Path) -> None:
    spec_path = tmp_path / "bad.toml"
    spec_path.write_text(
        'hypermodel = "hypermodels:build_tiny_model"\nmax_trials = 0\n',
        encoding="utf-8",
    )

    outcome = runner.invoke(app, ["tune", str(spec_path)])

    assert outcome.exit_code == EXIT_INVALID_SPEC
    assert "max_trials: must be at least 1. Received: max_trials=0." in outcome.output


def test_validate_prints_summary(tmp_path: Path, digits_npz: Path) -> None:
    spec_path = write_tiny_spec(tmp_path, digits_npz)

    outcome = runner.invoke(app, ["validate", str(spec_path)])

    assert outcome.exit_code == 0, outcome.output
    assert "is valid" in outcome.output
    assert "Data: 400 samples" in outcome.output
    assert "Default search space size: 3" in outcome.output


def test_validate_rejects_dask_with_sqlite(tmp_path: Path, digits_npz: Path) -> None:
    spec_path = write_tiny_spec(
        tmp_path, digits_npz, extra='engine = "dask"\nconcurrency = 2'
    )

    outcome = runner.invoke(
        app, ["validate", str(spec_path)], env={"MLFLOW_TRACKING_URI": ""}
    )

    assert outcome.exit_code == EXIT_INVALID_SPEC
    assert "mlflow.tracking_uri: engine = 'dask'" in outcome.output
    assert "mlflow server --backend-store-uri sqlite:///" in outcome.output


def test_tune_rejects_silent_tracking_server(tmp_path: Path, digits_npz: Path) -> None:
    spec_path = write_tiny_spec(tmp_path, digits_npz, experiment="silent")
    # Port 1 on the loopback address: nothing listens there, so the connection
    # is refused at once.
    silent = "http://127.0.0.1:1"

    outcome = runner.invoke(app, ["tune", str(spec_path), "--tracking-uri", silent])

    assert outcome.exit_code == EXIT_INVALID_SPEC
    assert f"no MLflow tracking server responds at {silent}" in outcome.output
    assert "Prefect API" not in outcome.output
