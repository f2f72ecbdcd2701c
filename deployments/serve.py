"""Declare the pipeline's deployments and serve them all from one process.

Run `python -m deployments.serve --help` for the options. Each option falls
back to an environment variable (`TUNEFLOW_SPEC`, `TUNEFLOW_MODEL`, ...), so
the same command works in a container. `deployments/prefect.yaml` declares
the same deployments for `prefect deploy --all` on a process work pool.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.schedules import Cron, Schedule
from pydantic import BaseModel, Field

from deployments.events import (
    DATA_RESOURCE_PREFIX,
    DATA_UPDATED_EVENT,
    MODEL_DEGRADED_EVENT,
    MODEL_RESOURCE_PREFIX,
)
from deployments.tuning import tune_with_budget_flow
from flows.monitoring import monitor_flow
from flows.retraining import RetrainingPolicy, retrain_flow

logger = logging.getLogger(__name__)

# Local 04:00 and 06:00 occur exactly once a day in Europe/Berlin and in
# America/New_York, whose clocks change between 01:00 and 03:00 (the schedule
# tests check both zones). A time inside that window runs twice or not at all
# on the day of a change.
TUNE_CRON = "0 4 * * *"
MONITOR_CRON = "0 6 * * *"
DEFAULT_TIMEZONE = "Europe/Berlin"


class DeploymentSettings(BaseModel):
    """Settings shared by the deployments: spec, registered model, data and budgets."""

    spec_path: str
    registered_model_name: str
    data_path: str = Field(description="The newest data, scored by the monitoring flow.")
    max_trials: int = Field(default=10, ge=1)
    retrain_max_trials: int = Field(default=2, ge=1)
    tune: list[str] = Field(default_factory=lambda: ["learning_rate"])
    threshold: float = 0.8
    policy: RetrainingPolicy = Field(default_factory=RetrainingPolicy)
    timezone: str = DEFAULT_TIMEZONE
    tracking_uri: str | None = None


def tune_schedule(timezone: str) -> Schedule:
    """Return the daily schedule of the tuning deployment."""
    return Cron(TUNE_CRON, timezone=timezone)


def monitor_schedule(timezone: str) -> Schedule:
    """Return the daily schedule of the monitoring deployment."""
    return Cron(MONITOR_CRON, timezone=timezone)


def retraining_triggers(registered_model_name: str) -> list[DeploymentEventTrigger]:
    """Return the triggers that start a retraining run: new data, and degradation.

    Each passes the event's data path and the event itself as the run's
    `cause`. Prefect 3.9 renders a template made of one expression, such as
    `{{ event.payload.score }}`, through JSON, so an int stays an int and a
    float a float. An event without `num_samples` passes null.
    """
    new_data = DeploymentEventTrigger(
        name=f"retrain-{registered_model_name}-on-new-data",
        expect={DATA_UPDATED_EVENT},
        match={"prefect.resource.id": f"{DATA_RESOURCE_PREFIX}*"},
        parameters={
            "data_path": "{{ event.payload.data_path }}",
            "cause": {
                "event": "{{ event.event }}",
                "num_samples": "{{ event.payload.num_samples | default(none) }}",
            },
        },
    )
    degraded = DeploymentEventTrigger(
        name=f"retrain-{registered_model_name}-on-degradation",
        expect={MODEL_DEGRADED_EVENT},
        match={"prefect.resource.id": f"{MODEL_RESOURCE_PREFIX}{registered_model_name}"},
        parameters={
            "data_path": "{{ event.payload.data_path }}",
            "cause": {"event": "{{ event.event }}", "score": "{{ event.payload.score }}"},
        },
    )
    return [new_data, degraded]


def build_deployments(settings: DeploymentSettings) -> list[RunnerDeployment]:
    """Return the tuning, retraining and monitoring deployments for `settings`."""
    tracking = {"tracking_uri": settings.tracking_uri}
    tune = tune_with_budget_flow.to_deployment(
        name="tune-daily",
        schedules=[tune_schedule(settings.timezone)],
        parameters={
            "spec_path": settings.spec_path,
            "max_trials": settings.max_trials,
            "registered_model_name": settings.registered_model_name,
            **tracking,
        },
        tags=["tuneflow"],
    )
    # One retraining at a time, so two events for the same data cannot both
    # pass the check for data already handled.
    retrain = retrain_flow.to_deployment(
        name="retrain-on-event",
        parameters={
            "registered_model_name": settings.registered_model_name,
            "spec_path": settings.spec_path,
            "tune": settings.tune,
            "max_trials": settings.retrain_max_trials,
            "policy": settings.policy.model_dump(),
            **tracking,
        },
        triggers=retraining_triggers(settings.registered_model_name),
        concurrency_limit=1,
        tags=["tuneflow"],
    )
    monitor = monitor_flow.to_deployment(
        name="monitor-daily",
        schedules=[monitor_schedule(settings.timezone)],
        parameters={
            "registered_model_name": settings.registered_model_name,
            "data_path": settings.data_path,
            "spec_path": settings.spec_path,
            "threshold": settings.threshold,
            **tracking,
        },
        tags=["tuneflow"],
    )
    return [tune, retrain, monitor]


def parse_settings(argv: Sequence[str] | None = None) -> DeploymentSettings:
    """Read the settings from the command line, falling back to environment variables."""
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="python -m deployments.serve",
        description="Serve the tuneflow deployments from this process.",
    )
    parser.add_argument("--spec", default=env("TUNEFLOW_SPEC"), help="Spec file path.")
    parser.add_argument(
        "--model", default=env("TUNEFLOW_MODEL"), help="Registered model name."
    )
    parser.add_argument(
        "--data", default=env("TUNEFLOW_DATA"), help="Newest data file, for monitoring."
    )
    parser.add_argument("--max-trials", type=int, default=int(env("TUNEFLOW_MAX_TRIALS", "10")))
    parser.add_argument(
        "--retrain-max-trials", type=int, default=int(env("TUNEFLOW_RETRAIN_MAX_TRIALS", "2"))
    )
    parser.add_argument(
        "--tune",
        default=env("TUNEFLOW_TUNE", "learning_rate"),
        help="Comma-separated hyperparameters a retraining searches again.",
    )
    parser.add_argument("--margin", type=float, default=float(env("TUNEFLOW_MARGIN", "0")))
    parser.add_argument(
        "--threshold", type=float, default=float(env("TUNEFLOW_THRESHOLD", "0.8"))
    )
    parser.add_argument("--timezone", default=env("TUNEFLOW_TIMEZONE", DEFAULT_TIMEZONE))
    parser.add_argument("--tracking-uri", default=env("MLFLOW_TRACKING_URI"))
    arguments = parser.parse_args(argv)

    missing = [
        option
        for option, value in (("--spec", arguments.spec), ("--model", arguments.model),
                              ("--data", arguments.data))
        if not value
    ]
    if missing:
        parser.error(
            f"missing {', '.join(missing)}. Pass them, or set TUNEFLOW_SPEC, "
            "TUNEFLOW_MODEL and TUNEFLOW_DATA."
        )
    return DeploymentSettings(
        spec_path=arguments.spec,
        registered_model_name=arguments.model,
        data_path=arguments.data,
        max_trials=arguments.max_trials,
        retrain_max_trials=arguments.retrain_max_trials,
        tune=[name.strip() for name in arguments.tune.split(",") if name.strip()],
        threshold=arguments.threshold,
        policy=RetrainingPolicy(margin=arguments.margin),
        timezone=arguments.timezone,
        tracking_uri=arguments.tracking_uri,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Serve every deployment until interrupted; schedules pause on shutdown."""
    settings = parse_settings(argv)
    deployments = build_deployments(settings)
    logger.info("Serving %d deployments for %s.", len(deployments), settings.registered_model_name)
    serve(*deployments)


if __name__ == "__main__":
    main()
