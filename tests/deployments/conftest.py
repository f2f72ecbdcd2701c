"""A real Prefect server for the deployment tests, on a free port of 127.0.0.1.

The fixture starts the server as a subprocess with analytics off, waits for its
health endpoint, and stops it on teardown. The MLflow server fixture and the
server environment are shared with other tests, in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from server_processes import (
    VENV_BIN,
    free_port,
    start_process,
    stop_process,
    wait_for_health,
)


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
