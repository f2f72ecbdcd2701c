"""Training and tracking one trial, as a plain function a worker process can run.

This module imports no Prefect, so a spawned worker process starts faster.
"""

from __future__ import annotations

import logging
from typing import Any

import mlflow
from mlflow import MlflowClient

import tuner_core
from tasks.data import DataRef, load_dataset
from tasks.results import TrialResult
from tasks.search_space import (
    cached_search_space,
    compile_overrides_from_spec,
    objective_from_spec,
)
from tasks.spec import TuningSpec
from tasks.tracking import (
    EpochMetricsLogger,
    end_run,
    log_trial_model,
    log_trial_outcome,
    start_trial_run,
)

logger = logging.getLogger(__name__)

SIGNATURE_SAMPLES = 2


class TrialError(RuntimeError):
    """Error for a failed trial, raised after its MLflow run was ended as FAILED.

    `fatal` is true when every later trial would fail the same way (the
    objective names a metric the model does not report), so the search stops.
    """

    def __init__(
        self,
        message: str,
        *,
        trial_number: int,
        run_id: str | None,
        error_type: str,
        fatal: bool,
    ) -> None:
        super().__init__(message)
        self.trial_number = trial_number
        self.run_id = run_id
        self.error_type = error_type
        self.fatal = fatal

    def __reduce__(self) -> tuple[Any, ...]:
        arguments = {
            "trial_number": self.trial_number,
            "run_id": self.run_id,
            "error_type": self.error_type,
            "fatal": self.fatal,
        }
        return (_rebuild_trial_error, (str(self), arguments))


def _rebuild_trial_error(message: str, arguments: dict[str, Any]) -> TrialError:
    return TrialError(message, **arguments)


def execute_trial(
    trial_number: int,
    values: dict[str, Any],
    data_ref: DataRef,
    spec: TuningSpec,
    parent_run_id: str,
    tracking_uri: str,
) -> TrialResult:
    """Train one configuration, logging params, per-epoch metrics and the model.

    Raises:
        TrialError: training or logging failed. The child run ends as FAILED.
    """
    # NOTE: MLflow's model logging reads a process-wide tracking URI, so one
    # process tracks one store at a time.
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    dataset = load_dataset(data_ref)
    hypermodel, space = cached_search_space(spec)
    objective = objective_from_spec(spec)

    run_id, experiment_id = start_trial_run(client, parent_run_id, trial_number, values)
    logger.info(
        "Trial %d started (run %s) with values %s.", trial_number, run_id, values
    )
    try:
        outcome = tuner_core.run_trial(
            hypermodel,
            space,
            values,
            objective=objective,
            x=dataset.x_train,
            y=dataset.y_train,
            validation_data=(dataset.x_val, dataset.y_val),
            overrides=compile_overrides_from_spec(spec),
            fit_kwargs={"epochs": spec.fit.epochs, "batch_size": spec.fit.batch_size},
            callbacks=[EpochMetricsLogger(client, run_id)],
            seed=None if spec.seed is None else spec.seed + trial_number,
        )
        log_trial_outcome(
            client,
            run_id,
            objective_name=objective.name,
            score=outcome.score,
            best_epoch=outcome.best_epoch,
            values=outcome.hyperparameters,
            logged_values=values,
        )
        model_info = log_trial_model(
            outcome.model,
            run_id=run_id,
            experiment_id=experiment_id,
            trial_number=trial_number,
            sample_x=dataset.x_val[:SIGNATURE_SAMPLES],
            best_epoch=outcome.best_epoch,
        )
    except Exception as error:
        end_run(client, run_id, "FAILED", error)
        logger.error("Trial %d failed (run %s): %s", trial_number, run_id, error)
        raise TrialError(
            f"Trial {trial_number} failed (MLflow run {run_id}): "
            f"{type(error).__name__}: {error}",
            trial_number=trial_number,
            run_id=run_id,
            error_type=type(error).__name__,
            fatal=isinstance(error, tuner_core.ObjectiveNotFoundError),
        ) from error
    except BaseException as error:
        end_run(client, run_id, "FAILED", error)
        raise

    end_run(client, run_id, "FINISHED")
    best_metrics = {
        name: history[outcome.best_epoch]
        for name, history in outcome.history.items()
        if outcome.best_epoch < len(history)
    }
    return TrialResult(
        number=trial_number,
        status="COMPLETED",
        hyperparameters=dict(outcome.hyperparameters),
        score=float(outcome.score),
        best_epoch=int(outcome.best_epoch),
        metrics=best_metrics,
        run_id=run_id,
        model_uri=model_info.model_uri,
        message=None,
    )
