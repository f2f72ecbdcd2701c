"""Prefect settings for flows that run against Prefect's temporary local server."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from prefect.settings import (
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    get_current_settings,
    temporary_settings,
)

HEARTBEAT_VARIABLES = (
    "PREFECT_FLOWS_HEARTBEAT_FREQUENCY",
    "PREFECT_RUNNER_HEARTBEAT_FREQUENCY",
)


@contextlib.contextmanager
def local_mode_settings() -> Iterator[None]:
    """Turn flow-run heartbeats off while no Prefect API URL is set.

    Heartbeats let a server that outlives the flow's process mark the flow run
    crashed once they stop. The temporary server stops with this process, so
    they serve nothing there. They also cost up to 1 s a flow run, because
    Prefect 3.9.1's heartbeat thread sleeps in 1 s steps and the end of each
    flow run waits for the current step (measured: 0.87-0.99 s). A heartbeat
    setting in the environment is kept, and so is everything with an API URL.
    """
    if get_current_settings().api.url or any(
        name in os.environ for name in HEARTBEAT_VARIABLES
    ):
        yield
        return
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
