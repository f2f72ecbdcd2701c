"""Tasks that run after the trials: pick the best one and register its model."""

from __future__ import annotations

import math

import mlflow
from mlflow import MlflowClient
from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from tasks.results import RegisteredModel, TrialResult
from tasks.tracking import register_champion
from tuner_core import Objective


def best_trial(trials: list[TrialResult], objective: Objective) -> TrialResult | None:
    """Return the completed trial with the best finite score, the earlier on a tie.

    Returns None when no trial completed with a finite score: a NaN score is
    never best, for either direction.
    """
    ranked = rank_trials(trials, objective)
    if not ranked or ranked[0][0] is None:
        return None
    best = ranked[0][1]
    if best["score"] is None or math.isnan(best["score"]):
        return None
    return best


def rank_trials(
    trials: list[TrialResult], objective: Objective
) -> list[tuple[int | None, TrialResult]]:
    """Return (rank, trial) pairs, best first, ranks counting from 1.

    Completed trials with a finite score come first, in the objective's
    order, then completed trials that scored NaN. Failed trials come last,
    in trial order, with rank None. Ties keep the earlier trial first.
    """
    completed = [t for t in trials if t["status"] == "COMPLETED"]
    completed.sort(key=lambda t: (objective.sort_key(t["score"]), t["number"]))
    failed = sorted(
        (t for t in trials if t["status"] != "COMPLETED"), key=lambda t: t["number"]
    )
    ranked: list[tuple[int | None, TrialResult]] = [
        (rank, trial) for rank, trial in enumerate(completed, start=1)
    ]
    ranked.extend((None, trial) for trial in failed)
    return ranked


@task(name="select-best-trial", cache_policy=NONE)
def select_best_trial(
    trials: list[TrialResult], objective_name: str, direction: str
) -> TrialResult | None:
    """Pick the best completed trial by the objective, or None if all scored NaN."""
    best = best_trial(trials, Objective(objective_name, direction))
    if best is not None:
        get_run_logger().info(
            "Best is trial %d with %s=%.6g and hyperparameters %s (run %s).",
            best["number"],
            objective_name,
            best["score"],
            best["hyperparameters"],
            best["run_id"],
        )
    return best


@task(name="register-best-model", cache_policy=NONE)
def register_best_model(
    best: TrialResult,
    registered_model_name: str,
    objective_name: str,
    tracking_uri: str,
) -> RegisteredModel:
    """Register the best trial's model and point the alias `champion` at it."""
    if best["model_uri"] is None or best["run_id"] is None or best["score"] is None:
        raise ValueError(
            f"Trial {best['number']} has no logged model to register. Received: "
            f"status={best['status']!r}. Register a completed trial."
        )
    mlflow.set_tracking_uri(tracking_uri)
    return register_champion(
        MlflowClient(tracking_uri),
        best["model_uri"],
        registered_model_name,
        run_id=best["run_id"],
        trial_number=best["number"],
        objective_name=objective_name,
        score=best["score"],
    )
