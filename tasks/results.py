"""Records that tasks and flows return: small and serializable, with no arrays."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from typing_extensions import TypedDict


class TrialResult(TypedDict):
    """Result of one trial task: its status, score, metrics and MLflow ids.

    `metrics` contains the metrics of the best epoch, the one whose weights the
    logged model carries. `model_uri` is `models:/m-...`, or None when the trial
    failed before its model was logged.
    """

    number: int
    status: str
    hyperparameters: dict[str, Any]
    score: float | None
    best_epoch: int | None
    metrics: dict[str, float]
    run_id: str | None
    model_uri: str | None
    message: str | None


class RegisteredModel(BaseModel):
    """A registered model version and the alias pointing at it."""

    name: str
    version: str
    alias: str
    model_uri: str


class SearchResult(BaseModel):
    """Outcome of a whole search: every trial, the best one and its registration."""

    experiment_name: str
    experiment_id: str
    parent_run_id: str
    tracking_uri: str
    objective: str
    direction: str
    stop_message: str | None
    trials: list[TrialResult]
    best_trial: TrialResult | None
    registered_model: RegisteredModel | None
