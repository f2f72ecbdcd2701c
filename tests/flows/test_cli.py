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
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Wide enough that no table cell wraps.
WIDE_CONSOLE = {"COLUMNS": "200"}


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
    assert "(MLflow step " in outcome.output
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
    assert "Objective: val_accuracy (max)" in outcome.output
    assert "Search space: 3 hyperparameters, 8 configurations" in outcome.output
    assert "{'default'" not in outcome.output


def table_rows(output: str) -> dict[str, list[str]]:
    """Return the cells of each row of the tables in `output`, by the first cell."""
    rows = {}
    for line in output.splitlines():
        if line.startswith("│"):
            cells = [cell.strip() for cell in line.strip("│").split("│")]
            rows[cells[0]] = cells
    return rows


def test_validate_tables_digits_example(tracking_uri: str) -> None:
    spec_path = EXAMPLES / "digits.toml"

    outcome = runner.invoke(app, ["validate", str(spec_path)], env=WIDE_CONSOLE)

    assert outcome.exit_code == 0, outcome.output
    rows = table_rows(outcome.output)
    assert sorted(rows) == ["dropout", "learning_rate", "units"]
    assert rows["units"] == [
        "units", "Int", "32 to 128, step 32", "linear", "64", "tuned"
    ]
    assert rows["dropout"] == [
        "dropout", "Boolean", "False, True", "", "False", "tuned"
    ]
    assert rows["learning_rate"] == [
        "learning_rate", "Choice", "0.01, 0.001, 0.0001", "", "0.01", "tuned"
    ]
    output = outcome.output
    assert "Search space: 3 hyperparameters, 24 configurations" in output
    assert "Objective: val_accuracy (max)" in output
    assert "Oracle: random, up to 10 trials" in output
    assert "Training: 3 epochs per trial, batch size 32" in output
    assert "Engine: local, 1 trial at a time, in the command's process" in output
    assert f"MLflow tracking URI: {tracking_uri}, experiment 'digits'" in output


def test_validate_marks_untuned_entries(tracking_uri: str) -> None:
    spec_path = EXAMPLES / "search_a_few.toml"

    outcome = runner.invoke(app, ["validate", str(spec_path)], env=WIDE_CONSOLE)

    assert outcome.exit_code == 0, outcome.output
    rows = table_rows(outcome.output)
    assert rows["learning_rate"] == [
        "learning_rate", "Float", "0.0001 to 0.01", "log", "0.0001", "tuned"
    ]
    assert rows["units"][-2:] == ["64", "not tuned"]
    assert rows["dropout"][-2:] == ["False", "not tuned"]
    assert "Search space: 1 hyperparameter" in outcome.output
    assert "Not tuned: tune_new_entries = false keeps" in outcome.output


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


def test_validate_names_tracking_uri_source(tmp_path: Path, digits_npz: Path) -> None:
    spec_path = write_tiny_spec(tmp_path, digits_npz, experiment="silent-validate")
    silent = "http://127.0.0.1:1"

    from_option = runner.invoke(
        app, ["validate", str(spec_path), "--tracking-uri", silent]
    )
    from_environment = runner.invoke(
        app, ["validate", str(spec_path)], env={"MLFLOW_TRACKING_URI": silent}
    )

    assert from_option.exit_code == EXIT_INVALID_SPEC
    assert f"Invalid spec {spec_path}: mlflow.tracking_uri:" in from_option.output
    assert f"tracking_uri='{silent}', from --tracking-uri." in from_option.output
    assert from_environment.exit_code == EXIT_INVALID_SPEC
    assert "from $MLFLOW_TRACKING_URI. " in from_environment.output
    assert "or fix $MLFLOW_TRACKING_URI" in from_environment.output


def test_tune_rejects_folder_as_spec(tmp_path: Path) -> None:
    outcome = runner.invoke(app, ["tune", str(EXAMPLES)])

    assert outcome.exit_code == EXIT_INVALID_SPEC
    assert "is a folder, not a TOML file" in outcome.output
    assert "such as" in outcome.output
    assert "compile_override.toml" in outcome.output


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("127.0.0.1:5999", "'127.0.0.1:5999' has no scheme. Received: "),
        ("mlruns", "a folder is MLflow's file store"),
        ("ftp://127.0.0.1/x", "unknown scheme 'ftp'"),
    ],
    ids=["host-and-port", "folder", "other-scheme"],
)
def test_validate_rejects_unusable_tracking_uri(
    tmp_path: Path, digits_npz: Path, uri: str, expected: str
) -> None:
    spec_path = write_tiny_spec(tmp_path, digits_npz, experiment="uri")

    outcome = runner.invoke(app, ["validate", str(spec_path), "--tracking-uri", uri])

    assert outcome.exit_code == EXIT_INVALID_SPEC, outcome.output
    assert expected in outcome.output
    assert "from --tracking-uri." in outcome.output
    assert "Traceback" not in outcome.output
