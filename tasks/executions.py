"""Training the executions of one trial and combining their scores."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

import tuner_core
from tasks.data import Dataset
from tasks.interrupted_runs import StopOnRequest
from tasks.search_space import compile_overrides_from_spec
from tasks.spec import TuningSpec
from tasks.trial_plan import TrialPlan
from tuner_core import (
    HyperModel,
    HyperParameters,
    Objective,
    TrialDeadline,
    TrialOutcome,
    optimizer_state,
    restore_trial_state,
)

# Execution i of a trial trains with seed `trial seed + i * EXECUTION_SEED_STRIDE`.
EXECUTION_SEED_STRIDE = 10_000


class InitialWeights(keras.callbacks.Callback):
    """Keras callback that sets an earlier trial's weights and optimizer state.

    The trial that this one continues logged them at its best epoch, so
    training goes on from there (see `tuner_core.restore_trial_state`).
    `source` names where they came from, for the log.
    """

    def __init__(
        self,
        weights: list[np.ndarray],
        build_config: dict[str, Any] | None,
        optimizer_state: list[np.ndarray] | None = None,
        source: str = "the continued trial's model",
    ) -> None:
        super().__init__()
        self.weights = weights
        self.build_config = build_config
        self.optimizer_state = optimizer_state
        self.source = source

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        restore_trial_state(
            self.model,
            self.weights,
            self.build_config,
            self.optimizer_state,
            self.source,
        )


def load_initial_weights(model_uri: str) -> InitialWeights:
    """Read the weights and optimizer state of a logged model, for a trial that continues it.

    The MLflow tracking URI must already be set with `mlflow.set_tracking_uri`.
    """
    import mlflow.tensorflow

    model = mlflow.tensorflow.load_model(model_uri)
    return InitialWeights(
        model.get_weights(),
        model.get_build_config(),
        optimizer_state(model),
        source=model_uri,
    )


@dataclass
class ExecutionsOutcome:
    """The executions of one trial. The trial's score is the mean of theirs.

    `initial_epoch` is the epoch every execution started from, so a history
    entry at index i belongs to epoch `initial_epoch + i`.
    """

    outcomes: list[TrialOutcome]
    objective: Objective
    initial_epoch: int = 0

    @property
    def scores(self) -> list[float]:
        return [outcome.score for outcome in self.outcomes]

    @property
    def score(self) -> float:
        """The mean of the execution scores, NaN when any of them is NaN."""
        return float(np.mean(self.scores))

    @property
    def best_index(self) -> int:
        """The execution with the best score, the earlier one on a tie."""
        return min(
            range(len(self.outcomes)),
            key=lambda i: (self.objective.sort_key(self.outcomes[i].score), i),
        )

    @property
    def best(self) -> TrialOutcome:
        """The best execution, whose model the trial logs."""
        return self.outcomes[self.best_index]

    def best_epoch_metrics(self) -> dict[str, float]:
        """Return the best execution's metrics at its best epoch."""
        best = self.best
        index = best.best_epoch - self.initial_epoch
        return {
            name: history[index]
            for name, history in best.history.items()
            if 0 <= index < len(history)
        }

    def mean_history(self) -> dict[str, list[float]]:
        """Return each metric's per-epoch mean over the executions."""
        names = set.intersection(*(set(o.history) for o in self.outcomes))
        means = {}
        for name in sorted(names):
            histories = [o.history[name] for o in self.outcomes]
            length = min(len(history) for history in histories)
            means[name] = [
                float(np.mean([history[i] for history in histories]))
                for i in range(length)
            ]
        return means

    def is_nan(self) -> bool:
        return math.isnan(self.score)


def run_executions(
    hypermodel: HyperModel,
    space: HyperParameters,
    values: dict[str, Any],
    *,
    spec: TuningSpec,
    plan: TrialPlan,
    objective: Objective,
    dataset: Dataset,
    callbacks: list[keras.callbacks.Callback],
    seed: int | None,
    deadline: TrialDeadline | None = None,
) -> ExecutionsOutcome:
    """Train `spec.executions_per_trial` models of one configuration.

    `callbacks` join the fit of a single execution only. With several
    executions, their per-epoch metrics are averaged after training instead.
    A plan with `initial_model_uri` starts every execution from those weights.
    A `deadline` limits all executions together, and a stop request
    (`tasks.stop_request`) stops each of them.
    """
    fit_kwargs: dict[str, Any] = {
        "epochs": plan.epochs if plan.epochs is not None else spec.fit.epochs,
        "batch_size": spec.fit.batch_size,
    }
    if plan.initial_epoch:
        fit_kwargs["initial_epoch"] = plan.initial_epoch
    initial_weights = None
    if plan.initial_model_uri is not None:
        initial_weights = load_initial_weights(plan.initial_model_uri)

    outcomes = []
    num_executions = spec.executions_per_trial
    for execution in range(num_executions):
        execution_callbacks = list(callbacks) if num_executions == 1 else []
        if initial_weights is not None:
            execution_callbacks.insert(0, initial_weights)
        # First, so that an epoch that ends after a stop request logs nothing.
        execution_callbacks.insert(0, StopOnRequest())
        outcome = tuner_core.run_trial(
            hypermodel,
            space,
            values,
            objective=objective,
            x=dataset.x_train,
            y=dataset.y_train,
            validation_data=(dataset.x_val, dataset.y_val),
            overrides=compile_overrides_from_spec(spec),
            fit_kwargs=dict(fit_kwargs),
            callbacks=execution_callbacks,
            seed=None if seed is None else seed + EXECUTION_SEED_STRIDE * execution,
            deadline=deadline,
        )
        outcomes.append(outcome)
    return ExecutionsOutcome(outcomes, objective, initial_epoch=plan.initial_epoch)
