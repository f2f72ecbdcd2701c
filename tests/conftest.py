"""Shared fixtures: one Prefect test backend per session, one MLflow store per test."""

from __future__ import annotations

import os

# Telemetry off before Prefect or MLflow is imported: the test machines are offline.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np

# Prefect configures logging when it is first imported, closing the handlers
# set up before it. absl's handler (TensorFlow's) then closes the stream it
# holds, which under pytest's capture is pytest's own, and every later test
# fails. So Prefect loads before any test module imports Keras.
import prefect.main  # noqa: F401
import pytest

# pytest runs with --import-mode=importlib, which adds no test folder to sys.path;
# the specs under test name helper modules here ("hypermodels:build_tiny_model").
TESTS_DIR = str(Path(__file__).parent)
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

from server_processes import (  # noqa: E402
    OFFLINE_ENVIRONMENT,
    VENV_BIN,
    ServerProcess,
    free_port,
    start_process,
    stop_process,
    wait_for_health,
)


@pytest.fixture(scope="session")
def prefect_backend() -> Iterator[None]:
    """Run flows against Prefect's test harness: a temporary server and database.

    Starting it costs about 13 s, so the whole session shares one.
    """
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness():
        yield


@pytest.fixture(scope="session")
def empty_mlflow_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Create and migrate one empty MLflow SQLite database for the session to copy.

    Migrating a new database takes seconds; copying the file takes milliseconds.
    """
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def tracking_uri(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_mlflow_database: Path
) -> Iterator[str]:
    """Point MLflow at a new SQLite store in the test's temporary folder."""
    from pipeline_runs import tracking_at

    database = tmp_path / "mlflow.db"
    shutil.copyfile(empty_mlflow_database, database)
    with tracking_at(f"sqlite:///{database}", monkeypatch) as uri:
        yield uri


@pytest.fixture(scope="session")
def digits_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write 400 of scikit-learn's digits as 8x8 images in [0, 1] to a .npz file."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    path = tmp_path_factory.mktemp("data") / "digits400.npz"
    np.savez(
        path,
        x=(digits.images[:400] / 16.0).astype(np.float32),
        y=digits.target[:400].astype(np.int64),
    )
    return path


@pytest.fixture(scope="session")
def server_environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Return the environment for the servers and the processes that talk to them."""
    prefect_home = tmp_path_factory.mktemp("prefect-home")
    return {**os.environ, **OFFLINE_ENVIRONMENT, "PREFECT_HOME": str(prefect_home)}


@pytest.fixture(scope="session")
def mlflow_server(
    server_environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """Start `mlflow server` with a SQLite store on a free port of 127.0.0.1."""
    port = free_port()
    folder = tmp_path_factory.mktemp("mlflow-server")
    log_path = folder / "server.log"
    process = start_process(
        [str(VENV_BIN / "mlflow"), "server",
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--artifacts-destination", str(folder / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        server_environment,
        log_path,
    )
    try:
        wait_for_health(f"http://127.0.0.1:{port}/health", process, log_path)
        yield ServerProcess(url=f"http://127.0.0.1:{port}", log_path=log_path)
    finally:
        stop_process(process)


@pytest.fixture(scope="session")
def mlflow_tracking_uri(mlflow_server: ServerProcess) -> str:
    """Return the URL of the session's MLflow tracking server."""
    return mlflow_server.url
