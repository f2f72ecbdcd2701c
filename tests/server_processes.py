"""Starting and stopping the server and serve processes that tests run against."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SERVER_START_TIMEOUT_SECONDS = 120.0

OFFLINE_ENVIRONMENT = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "TF_CPP_MIN_LOG_LEVEL": "3",
}


class ServerProcess(NamedTuple):
    """A server started by a fixture: the URL it serves and the file of its output."""

    url: str
    log_path: Path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_health(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Poll `url` until it returns 200; fail with the server's log if it exits or times out."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log_tail = log_path.read_text()[-3000:]
            pytest.fail(f"Server exited with {process.returncode}:\n{log_tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"{url} was not healthy after {SERVER_START_TIMEOUT_SECONDS} s:\n"
                f"{log_path.read_text()[-3000:]}")


def start_process(
    command: list[str], env: dict[str, str], log_path: Path, cwd: Path = REPO_ROOT
) -> subprocess.Popen[bytes]:
    """Start `command` in its own process group, with output going to `log_path`."""
    log = log_path.open("wb")
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def stop_process(process: subprocess.Popen[bytes], timeout_seconds: float = 20.0) -> None:
    """Interrupt the process group started by `start_process`, then kill it if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=timeout_seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout_seconds)
