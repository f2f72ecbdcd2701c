"""Deployment schedules across daylight-saving changes, and prefect.yaml against serve."""

from __future__ import annotations

import asyncio
import datetime
from collections import Counter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from prefect.deployments.schedules import create_deployment_schedule_create
from prefect.schedules import Schedule
from prefect.server.schemas.schedules import CronSchedule as ServerCronSchedule

from deployments.serve import (
    DeploymentSettings,
    build_deployments,
    monitor_schedule,
    tune_schedule,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def next_local_times(
    schedule: Schedule, start: datetime.datetime, count: int
) -> list[datetime.datetime]:
    """Return the schedule's next `count` run times, as Prefect's scheduler computes them."""
    create = create_deployment_schedule_create(schedule)
    cron = ServerCronSchedule(**create.schedule.model_dump())
    dates = asyncio.run(cron.get_dates(n=count, start=start))
    return [date.astimezone(ZoneInfo(schedule.timezone or "UTC")) for date in dates]


@pytest.mark.parametrize("timezone", ["Europe/Berlin", "America/New_York"])
@pytest.mark.parametrize("make_schedule", [tune_schedule, monitor_schedule])
def test_daily_schedule_runs_once_a_day_across_dst(
    timezone: str, make_schedule: Any
) -> None:
    schedule = make_schedule(timezone)
    zone = ZoneInfo(timezone)
    # Jan 1 to Dec 31 2027 covers both clock changes of both zones.
    start = datetime.datetime(2027, 1, 1, tzinfo=zone)

    times = next_local_times(schedule, start, 365)

    days = Counter(time.date() for time in times)
    assert max(days.values()) == 1
    assert len(days) == 365
    assert min(days) == datetime.date(2027, 1, 1)
    assert max(days) == datetime.date(2027, 12, 31)
    assert {(time.hour, time.minute) for time in times} == {(times[0].hour, times[0].minute)}
    assert schedule.timezone == timezone


def test_schedule_keeps_local_hour_over_spring_forward() -> None:
    schedule = tune_schedule("Europe/Berlin")
    start = datetime.datetime(2027, 3, 26, tzinfo=ZoneInfo("Europe/Berlin"))

    times = next_local_times(schedule, start, 4)

    assert [time.date().day for time in times] == [26, 27, 28, 29]
    assert all(time.hour == 4 for time in times)
    utc_hours = [time.astimezone(datetime.timezone.utc).hour for time in times]
    assert utc_hours == [3, 3, 2, 2]


def load_prefect_yaml() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "deployments" / "prefect.yaml").read_text())


def test_prefect_yaml_matches_served_deployments() -> None:
    declared = {d["name"]: d for d in load_prefect_yaml()["deployments"]}
    settings = DeploymentSettings(
        spec_path="examples/digits.toml",
        registered_model_name="digits-dense",
        data_path="data/newest.npz",
    )

    served = {d.name: d for d in build_deployments(settings)}

    assert set(declared) == set(served)
    for name, deployment in served.items():
        entry = declared[name]
        assert entry["entrypoint"] == deployment.entrypoint
        assert set(entry["parameters"]) == set(deployment.parameters)
        schedules = [
            {"cron": s.schedule.cron, "timezone": s.schedule.timezone}
            for s in deployment.schedules
        ]
        assert entry.get("schedules", []) == schedules
        triggers = [(t.name, t.expect, t.match, t.parameters) for t in deployment.triggers]
        declared_triggers = [
            (t["name"], set(t["expect"]), t["match"], t["parameters"])
            for t in entry.get("triggers", [])
        ]
        assert len(declared_triggers) == len(triggers)
        for declared_trigger, trigger in zip(declared_triggers, triggers):
            assert declared_trigger[0] == trigger[0]
            assert declared_trigger[1] == trigger[1]
            assert declared_trigger[2] == trigger[2].model_dump()
            assert declared_trigger[3] == trigger[3]
