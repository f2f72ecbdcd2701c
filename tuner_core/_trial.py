"""A trial: one configuration of the search space and what came of it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from tuner_core._hyperparameters import HyperParameters


class TrialStatus(str, enum.Enum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    INVALID = "INVALID"
    STOPPED = "STOPPED"

    def is_finished(self) -> bool:
        return self in (TrialStatus.COMPLETED, TrialStatus.FAILED, TrialStatus.INVALID)


@dataclass
class Trial:
    """One configuration, its status, its score and its metric histories.

    `hyperparameters` contains the tuned values the oracle chose. `values`
    contains every active value the build function read, tuned or not, once the
    trial ran.
    A failed trial keeps its values and has the error text in `message`.
    `execution_scores` holds the best-epoch objective of each execution, whose
    mean is `score`, and `optimizer` is the serialized optimizer the model
    trained with, which differs from the hypermodel's own under an override.
    """

    trial_id: str
    number: int
    hyperparameters: HyperParameters
    status: TrialStatus = TrialStatus.RUNNING
    score: float | None = None
    best_step: int | None = None
    metrics: dict[str, list[float]] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    message: str | None = None
    attempts: int = 0
    execution_scores: list[float] = field(default_factory=list)
    optimizer: dict[str, Any] | str | None = None

    def get_state(self) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id,
            "number": self.number,
            "hyperparameters": self.hyperparameters.get_config(),
            "status": self.status.value,
            "score": self.score,
            "best_step": self.best_step,
            "metrics": self.metrics,
            "values": self.values,
            "message": self.message,
            "attempts": self.attempts,
            "execution_scores": self.execution_scores,
            "optimizer": self.optimizer,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Trial:
        return cls(
            trial_id=state["trial_id"],
            number=state["number"],
            hyperparameters=HyperParameters.from_config(state["hyperparameters"]),
            status=TrialStatus(state["status"]),
            score=state.get("score"),
            best_step=state.get("best_step"),
            metrics=state.get("metrics", {}),
            values=state.get("values", {}),
            message=state.get("message"),
            attempts=state.get("attempts", 0),
            execution_scores=state.get("execution_scores", []),
            optimizer=state.get("optimizer"),
        )
