"""Prefect settings of flows that run on Prefect's temporary local server."""

from __future__ import annotations

import pytest
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    get_current_settings,
    temporary_settings,
)

from flows.local_prefect import local_mode_settings


def heartbeat_seconds() -> int | None:
    return get_current_settings().flows.heartbeat_frequency


def test_heartbeats_off_without_api_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", raising=False)
    monkeypatch.delenv("PREFECT_RUNNER_HEARTBEAT_FREQUENCY", raising=False)
    with temporary_settings(
        updates={PREFECT_API_URL: None, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 90}
    ):
        with local_mode_settings():
            assert heartbeat_seconds() is None
        assert heartbeat_seconds() == 90


def test_heartbeats_kept_with_api_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", raising=False)
    with temporary_settings(
        updates={
            PREFECT_API_URL: "http://127.0.0.1:4200/api",
            PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 90,
        }
    ):
        with local_mode_settings():
            assert heartbeat_seconds() == 90


def test_environment_heartbeat_setting_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "90")
    with temporary_settings(
        updates={PREFECT_API_URL: None, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 90}
    ):
        with local_mode_settings():
            assert heartbeat_seconds() == 90
