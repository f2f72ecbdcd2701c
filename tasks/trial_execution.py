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
from tasks.executions import run_executions
from tasks.search_space import cached_search_space, objective_from_spec
from tasks.spec import TuningSpec
from tasks.tracking import (
    EpochMetricsLogger,
    end_run,
    log_trial_model,
    log_trial_outcome,
    start_trial_run,
)
from tasks.trial_details import describe_optimizer, log_executions, log_trial_plan
from tasks.trial_plan import TrialPlan

logger = logging.getLogger(__name__)

SIGNATURE_SAMPLES = 2


class TrialError(RuntimeError):
    """Error for a failed trial, raised after its MLflow run was ended as FAILED.

    `fatal` is true when every later trial would fail the same way (the
    objective names a metric the model does not report), so the search stops.
    `retryable` is false for errors that a retry would repeat: a fatal error,
    or a `tuner_core.FailedTrialError` raised by the hypermodel.
    """

    def __init__(
        self,
        message: str,
        *,
        trial_number: int,
        run_id: str | None,
        error_type: str,
        fatal: bool,
        retryable: bool = True,
    ) -> None:
        super().__init__(message)
        self.trial_number = trial_number
        self.run_id = run_id
        self.error_type = error_type
        self.fatal = fatal
        self.retryable = retryable and not fatal

    def __reduce__(self) -> tuple[Any, ...]:
        arguments = {
            "trial_number": self.trial_number,
            "run_id": self.run_id,
            "error_type": self.error_type,
            "fatal": self.fatal,
            "retryable": self.retryable,
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
    plan: TrialPlan | None = None,
) -> TrialResult:
    """Train one configuration, logging params, per-epoch metrics and the model.

    `plan` sets the attempt, a Hyperband epoch budget and the weights to start
    from. The trial trains `spec.executions_per_trial` models, scores their
    mean, and logs the best one.

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
    plan = plan or TrialPlan()

    run_id, experiment_id = start_trial_run(client, parent_run_id, trial_number, values)
    log_trial_plan(client, run_id, plan)
    logger.info(
        "Trial %d started (run %s) with values %s.", trial_number, run_id, values
    )
    try:
        executions = run_executions(
            hypermodel,
            space,
            values,
            spec=spec,
            plan=plan,
            objective=objective,
            dataset=dataset,
            callbacks=[EpochMetricsLogger(client, run_id)],
            seed=None if spec.seed is None else spec.seed + trial_number,
        )
        outcome = executions.best
        log_executions(client, run_id, executions)
        log_trial_outcome(
            client,
            run_id,
            objective_name=objective.name,
            score=executions.score,
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
            retryable=not isinstance(error, tuner_core.FailedTrialError),
        ) from error
    except BaseException as error:
        end_run(client, run_id, "FAILED", error)
        raise

    end_run(client, run_id, "FINISHED")
    result = TrialResult(
        number=trial_number,
        status="COMPLETED",
        hyperparameters=dict(outcome.hyperparameters),
        score=executions.score,
        best_epoch=int(outcome.best_epoch),
        metrics=executions.best_epoch_metrics(),
        run_id=run_id,
        model_uri=model_info.model_uri,
        message=None,
        execution_scores=[float(score) for score in executions.scores],
        optimizer=describe_optimizer(outcome.optimizer),
    )
    schedule = plan.schedule()
    if schedule is not None:
        result["schedule"] = schedule
    return result


def prepare_trial_inputs(data_ref: DataRef, spec: TuningSpec) -> None:
    """Load the data set and build the search space into this process's caches."""
    load_dataset(data_ref)
    cached_search_space(spec)
