"""The training settings of one trial beyond its values: attempt, epoch budget, starting weights."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from tuner_core import HyperbandTrial, Trial

if TYPE_CHECKING:
    from tasks.results import TrialResult


class TrialPlan(BaseModel):
    """Training settings of one trial that its hyperparameter values do not give.

    Without a plan, a trial trains for the spec's [fit] epochs from fresh
    weights. Hyperband sets `epochs` (the epoch to train up to) and
    `initial_epoch`. A trial that continues an earlier one starts from the
    weights of that trial's logged model at `initial_model_uri`. `attempt`
    counts from 1 and grows with each retry of the trial task.
    """

    model_config = ConfigDict(frozen=True)

    attempt: int = 1
    epochs: int | None = None
    initial_epoch: int = 0
    hyperband_bracket: int | None = None
    hyperband_round: int | None = None
    continued_trial: int | None = None
    continued_run_id: str | None = None
    initial_model_uri: str | None = None

    def schedule(self) -> dict[str, int] | None:
        """Return the Hyperband schedule for the trial result, or None without one."""
        if self.epochs is None:
            return None
        schedule = {"epochs": self.epochs, "initial_epoch": self.initial_epoch}
        if self.hyperband_bracket is not None:
            schedule["bracket"] = self.hyperband_bracket
        if self.hyperband_round is not None:
            schedule["round"] = self.hyperband_round
        if self.continued_trial is not None:
            schedule["continued_trial"] = self.continued_trial
        return schedule

    def tags(self) -> dict[str, str]:
        """Return the MLflow tags that record the attempt and the epoch budget."""
        tags = {"tuneflow.attempt": str(self.attempt)}
        if self.epochs is not None:
            tags["tuneflow.epochs"] = str(self.epochs)
            tags["tuneflow.initial_epoch"] = str(self.initial_epoch)
        if self.hyperband_bracket is not None:
            tags["tuneflow.hyperband.bracket"] = str(self.hyperband_bracket)
        if self.hyperband_round is not None:
            tags["tuneflow.hyperband.round"] = str(self.hyperband_round)
        if self.continued_trial is not None:
            tags["tuneflow.continued_trial"] = str(self.continued_trial)
        if self.continued_run_id is not None:
            tags["tuneflow.continued_run_id"] = self.continued_run_id
        return tags


def plan_trial(trial: Trial, finished: Mapping[str, TrialResult]) -> TrialPlan:
    """Return the plan of a trial, reading a Hyperband trial's schedule.

    `finished` maps trial ids to the results of finished trials, where a
    continued trial finds the logged model it starts from.

    Raises:
        ValueError: the trial continues one that has no logged model.
    """
    if not isinstance(trial, HyperbandTrial):
        return TrialPlan()

    schedule = trial.schedule
    plan = TrialPlan(
        epochs=schedule["tuner/epochs"],
        initial_epoch=schedule["tuner/initial_epoch"],
        hyperband_bracket=schedule["tuner/bracket"],
        hyperband_round=schedule["tuner/round"],
    )
    parent_id = schedule.get("tuner/trial_id")
    if parent_id is None:
        return plan

    parent = finished.get(parent_id)
    if parent is None or parent["model_uri"] is None:
        raise ValueError(
            f"Trial {trial.number} continues trial id {parent_id!r}, which has no "
            "logged model to start from. Rerun the search with overwrite = true."
        )
    return plan.model_copy(
        update={
            "continued_trial": parent["number"],
            "continued_run_id": parent["run_id"],
            "initial_model_uri": parent["model_uri"],
        }
    )
