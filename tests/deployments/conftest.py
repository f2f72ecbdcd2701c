"""Real servers for the deployment tests: Prefect and MLflow on free ports of 127.0.0.1.

Each fixture starts its server as a subprocess with analytics and telemetry
off, waits for its health endpoint, and stops it on teardown.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# pytest's importlib mode puts no test folder on sys.path; the tests import
# the process helpers next to this file.
sys.path.insert(0, str(Path(__file__).parent))

from server_processes import (  # noqa: E402
    OFFLINE_ENVIRONMENT,
    VENV_BIN,
    free_port,
    start_process,
    stop_process,
    wait_for_health,
)


@pytest.fixture(scope="session")
def server_environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Return the environment for the servers and the processes that talk to them."""
    prefect_home = tmp_path_factory.mktemp("prefect-home")
    return {**os.environ, **OFFLINE_ENVIRONMENT, "PREFECT_HOME": str(prefect_home)}


@pytest.fixture(scope="session")
def prefect_api_url(
    server_environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Start `prefect server start` on a free port and return its API URL."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("prefect-server") / "server.log"
    process = start_process(
        [str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
         "--port", str(port)],
        server_environment,
        log_path,
    )
    try:
        wait_for_health(f"http://127.0.0.1:{port}/api/health", process, log_path)
        yield f"http://127.0.0.1:{port}/api"
    finally:
        stop_process(process)


@pytest.fixture(scope="session")
def mlflow_tracking_uri(
    server_environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Start `mlflow server` with a SQLite store on a free port and return its URL."""
    port = free_port()
    folder = tmp_path_factory.mktemp("mlflow-server")
    process = start_process(
        [str(VENV_BIN / "mlflow"), "server",
         "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--artifacts-destination", str(folder / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        server_environment,
        folder / "server.log",
    )
    try:
        wait_for_health(f"http://127.0.0.1:{port}/health", process, folder / "server.log")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)
