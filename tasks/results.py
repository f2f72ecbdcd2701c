"""Records that tasks and flows return: small and serializable, with no arrays."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from typing_extensions import NotRequired, TypedDict


class TrialResult(TypedDict):
    """Result of one trial task: its status, score, metrics and MLflow ids.

    `metrics` contains the metrics of the best epoch, the one whose weights the
    logged model carries. `model_uri` is `models:/m-...`, or None when the trial
    failed before its model was logged.

    With several executions, `score` is the mean of `execution_scores` and the
    logged model is the best execution's. `optimizer` names the optimizer class
    and learning rate the model trained with. `schedule` contains a Hyperband
    trial's `epochs`, `initial_epoch`, `bracket`, `round` and, for a trial
    that continues another, `continued_trial`. `failure_reason` is "timeout"
    for a failed trial that ran past `trial_timeout_seconds`.
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
    execution_scores: NotRequired[list[float]]
    optimizer: NotRequired[dict[str, Any]]
    schedule: NotRequired[dict[str, int]]
    failure_reason: NotRequired[str]


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
