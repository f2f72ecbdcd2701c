"""The monitoring flow: score the champion on the newest data and report degradation.

When the champion's objective falls past the threshold, the flow emits the
degradation event that the retraining deployment's trigger listens for.
"""

from __future__ import annotations

import time

import mlflow
import numpy as np
from mlflow import MlflowClient
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from pydantic import BaseModel

from deployments.events import emit_model_degraded
from flows.champion import evaluate_model, load_data_file, read_champion
from tasks.data import Dataset
from tasks.preparation import artifact_key
from tasks.search_space import objective_from_spec
from tasks.spec import load_spec
from tasks.tracking import resolve_tracking_uri

# The split only separates two halves that are scored together, so its size is arbitrary.
_EVALUATION_SPLIT = 0.5


class MonitoringResult(BaseModel):
    """The champion's score on the newest data and whether it counts as degraded."""

    registered_model_name: str
    version: str
    objective: str
    direction: str
    score: float
    threshold: float
    degraded: bool
    data_path: str
    data_fingerprint: str
    event_id: str | None = None


@flow(name="monitor", flow_run_name="monitor-{registered_model_name}")
def monitor_flow(
    registered_model_name: str,
    data_path: str,
    spec_path: str,
    threshold: float,
    tracking_uri: str | None = None,
) -> MonitoringResult:
    """Score the champion of `registered_model_name` on every sample of `data_path`.

    The objective and its direction come from the spec at `spec_path`. The
    champion is degraded when its score is below `threshold` for an objective
    to maximize, or above it for one to minimize. A degraded champion makes the
    flow emit the degradation event.
    """
    logger = get_run_logger()
    spec = load_spec(spec_path)
    objective = objective_from_spec(spec)
    uri = resolve_tracking_uri(tracking_uri, spec.mlflow.tracking_uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)

    champion = read_champion(client, registered_model_name)
    data_ref, dataset = load_data_file(spec, data_path, _EVALUATION_SPLIT, seed=0)
    score = score_champion(champion.model_uri, dataset, objective.name)

    if objective.direction == "max":
        degraded = score < threshold
    else:
        degraded = score > threshold
    result = MonitoringResult(
        registered_model_name=registered_model_name,
        version=champion.version,
        objective=objective.name,
        direction=objective.direction,
        score=score,
        threshold=threshold,
        degraded=degraded,
        data_path=str(data_ref.path),
        data_fingerprint=data_ref.fingerprint,
    )
    record_check(client, result)

    if degraded:
        event = emit_model_degraded(
            registered_model_name,
            version=champion.version,
            data_path=result.data_path,
            objective=objective.name,
            score=score,
            threshold=threshold,
        )
        result.event_id = str(event.id)
        logger.warning(
            "Champion %s version %s is degraded: %s=%.4f is past the threshold %g. "
            "Emitted event %s.",
            registered_model_name, champion.version, objective.name, score, threshold,
            event.id,
        )
    else:
        logger.info(
            "Champion %s version %s is healthy: %s=%.4f (threshold %g).",
            registered_model_name, champion.version, objective.name, score, threshold,
        )

    publish_check(result)
    return result


@task(name="score-champion", cache_policy=NONE)
def score_champion(model_uri: str, dataset: Dataset, objective: str) -> float:
    """Score the model on every sample: both parts of the split together."""
    x = np.concatenate([dataset.x_train, dataset.x_val])
    y = np.concatenate([dataset.y_train, dataset.y_val])
    return evaluate_model(model_uri, x, y, objective)


def record_check(client: MlflowClient, result: MonitoringResult) -> None:
    """Tag the champion version with the latest check's score, threshold and verdict."""
    tags = {
        "tuneflow.monitoring.score": repr(result.score),
        "tuneflow.monitoring.threshold": repr(result.threshold),
        "tuneflow.monitoring.degraded": str(result.degraded).lower(),
        "tuneflow.monitoring.data_fingerprint": result.data_fingerprint,
        "tuneflow.monitoring.checked_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    for key, value in tags.items():
        client.set_model_version_tag(result.registered_model_name, result.version, key, value)


def publish_check(result: MonitoringResult) -> None:
    """Publish the check as a Prefect markdown artifact."""
    verdict = "degraded" if result.degraded else "healthy"
    markdown = (
        f"# {result.registered_model_name} version {result.version}: {verdict}\n\n"
        f"| objective | direction | score | threshold | data |\n"
        f"|---|---|---|---|---|\n"
        f"| {result.objective} | {result.direction} | {result.score:.4f} | "
        f"{result.threshold:g} | `{result.data_path}` |\n"
    )
    create_markdown_artifact(
        key=artifact_key("monitoring", result.registered_model_name),
        markdown=markdown,
        description=f"Champion check: {verdict}",
    )
