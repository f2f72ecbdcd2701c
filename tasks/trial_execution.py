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
from tasks.gpus import gpu_tags
from tasks.interrupted_runs import end_interrupted_run
from tasks.search_space import cached_search_space, objective_from_spec
from tasks.spec import TuningSpec
from tasks.stop_request import SearchInterruptedError, stop_requested
from tasks.tracking import (
    EpochMetricsLogger,
    completed_tag,
    end_run,
    log_trial_model,
    outcome_records,
    start_trial_run,
    warm_up_model_logging,
)
from tasks.trial_details import describe_optimizer, execution_records
from tasks.trial_plan import TrialPlan
from tasks.trial_timeouts import (
    STOPPED_BY_KILL,
    STOPPED_IN_TRAINING,
    find_running_trial_run,
    log_timeout,
    trial_deadline,
)
from tasks.workers import TrialWorkers, WorkerTimeoutError

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


class TimedOutTrialError(TrialError, TimeoutError):
    """Error for a trial that ran past `trial_timeout_seconds`, which is not retried.

    Being a TimeoutError, it makes Prefect name the task run's state TimedOut.
    """

    failure_reason = "timeout"

    def __init__(self, message: str, *, trial_number: int, run_id: str | None) -> None:
        super().__init__(
            message,
            trial_number=trial_number,
            run_id=run_id,
            error_type=type(self).__name__,
            fatal=False,
            retryable=False,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_timed_out_error, (str(self), self.trial_number, self.run_id))


def _rebuild_timed_out_error(
    message: str, trial_number: int, run_id: str | None
) -> TimedOutTrialError:
    return TimedOutTrialError(message, trial_number=trial_number, run_id=run_id)


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
        SearchInterruptedError: a stop was requested (`tasks.stop_request`).
            A trial that had started training ends its run KILLED.
    """
    if stop_requested():
        raise SearchInterruptedError(
            f"Trial {trial_number} did not start, because the user interrupted "
            "the search."
        )
    # NOTE: MLflow resolves the `models:/` URI of a continued trial's parent
    # (tasks.executions) with a process-wide tracking URI, so one process
    # tracks one store at a time.
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    dataset = load_dataset(data_ref)
    hypermodel, space = cached_search_space(spec)
    objective = objective_from_spec(spec)
    plan = plan or TrialPlan()

    run_id, experiment_id = start_trial_run(
        client, parent_run_id, trial_number, values, tags={**plan.tags(), **gpu_tags()}
    )
    logger.info(
        "Trial %d started (run %s) with values %s.", trial_number, run_id, values
    )
    epoch_metrics = EpochMetricsLogger(client, run_id)
    try:
        with epoch_metrics.written_if_training_fails():
            executions = run_executions(
                hypermodel,
                space,
                values,
                spec=spec,
                plan=plan,
                objective=objective,
                dataset=dataset,
                callbacks=[epoch_metrics],
                seed=None if spec.seed is None else spec.seed + trial_number,
                deadline=trial_deadline(spec),
            )
        outcome = executions.best
        # One batch for what training produced, and the trial's status: each
        # MLflow write to a SQLite store costs milliseconds.
        records = execution_records(executions)
        records.metrics[:0] = epoch_metrics.take_pending()
        records.extend(
            outcome_records(
                objective_name=objective.name,
                score=executions.score,
                best_epoch=outcome.best_epoch,
                values=outcome.hyperparameters,
                logged_values=values,
            )
        )
        # The model goes before the batch, so that the batch links its
        # metrics of the best epoch to the model.
        with records.written_if_failing(client, run_id):
            logged_model = log_trial_model(
                client,
                outcome.model,
                run_id=run_id,
                experiment_id=experiment_id,
                trial_number=trial_number,
                sample_x=dataset.x_val[:SIGNATURE_SAMPLES],
                best_epoch=outcome.best_epoch,
            )
        records.link_model_metrics(logged_model.model_id, outcome.best_epoch)
        records.metrics.extend(
            epoch_metrics.written_at(outcome.best_epoch, logged_model.model_id)
        )
        records.tags.append(completed_tag())
        records.write(client, run_id)
    except SearchInterruptedError as error:
        end_interrupted_run(client, run_id)
        logger.info("Trial %d stopped (run %s): %s", trial_number, run_id, error)
        raise SearchInterruptedError(
            f"Trial {trial_number} stopped (MLflow run {run_id} ended KILLED): {error}"
        ) from error
    except tuner_core.TrialTimeoutError as error:
        raise end_timed_out_trial(
            client, run_id, trial_number, error, STOPPED_IN_TRAINING
        ) from error
    except Exception as error:
        end_run(client, run_id, "FAILED", error)
        # INFO: the TrialError below carries this message to the caller, which
        # reports it, and in a worker process Python's last-resort handler would
        # print a WARNING or an ERROR to the terminal a second time.
        logger.info("Trial %d failed (run %s): %s", trial_number, run_id, error)
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

    client.set_terminated(run_id, status="FINISHED")
    result = TrialResult(
        number=trial_number,
        status="COMPLETED",
        hyperparameters=dict(outcome.hyperparameters),
        score=executions.score,
        best_epoch=int(outcome.best_epoch),
        metrics=executions.best_epoch_metrics(),
        run_id=run_id,
        model_uri=logged_model.model_uri,
        message=None,
        execution_scores=[float(score) for score in executions.scores],
        optimizer=describe_optimizer(outcome.optimizer),
    )
    schedule = plan.schedule()
    if schedule is not None:
        result["schedule"] = schedule
    return result


def prepare_trial_inputs(
    data_ref: DataRef, spec: TuningSpec, tracking_uri: str | None = None
) -> None:
    """Ready a worker process for its first trial, before any trial's clock starts.

    Loads the data set and builds the search space into this process's caches.
    With `tracking_uri`, also opens the MLflow store (its schema check took
    0.6 s in a new process, measured) and runs one tiny fit, which pays
    TensorFlow's one-time start-up in this process.
    """
    dataset = load_dataset(data_ref)
    cached_search_space(spec)
    if tracking_uri is None:
        return
    mlflow.set_tracking_uri(tracking_uri)
    MlflowClient(tracking_uri).search_experiments(max_results=1)
    warm_up_model_logging()
    warm_up_tensorflow(dataset.x_train[:8])


def warm_up_tensorflow(sample_x: Any) -> None:
    """Fit a one-layer model for one step, then reset Keras's state."""
    import keras
    import numpy as np

    from tuner_core._session import reset_keras_session

    model = keras.Sequential(
        [keras.Input(sample_x.shape[1:]), keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    model.compile(optimizer="sgd", loss="mse")
    model.fit(sample_x, np.zeros(len(sample_x)), epochs=1, verbose=0)
    reset_keras_session()


def end_timed_out_trial(
    client: MlflowClient,
    run_id: str,
    trial_number: int,
    error: tuner_core.TrialTimeoutError | WorkerTimeoutError,
    stopped_by: str,
    timeout_seconds: float | None = None,
) -> TimedOutTrialError:
    """End a timed-out trial's run as FAILED with the timeout tags, return its error."""
    limit = getattr(error, "timeout_seconds", timeout_seconds)
    if limit is not None:
        log_timeout(client, run_id, limit, stopped_by)
    end_run(client, run_id, "FAILED", error)
    logger.info("Trial %d timed out (run %s): %s", trial_number, run_id, error)
    return TimedOutTrialError(
        f"Trial {trial_number} timed out (MLflow run {run_id}): "
        f"{type(error).__name__}: {error}",
        trial_number=trial_number,
        run_id=run_id,
    )


def execute_trial_in_workers(
    workers: TrialWorkers,
    trial_number: int,
    values: dict[str, Any],
    data_ref: DataRef,
    spec: TuningSpec,
    parent_run_id: str,
    tracking_uri: str,
    plan: TrialPlan | None = None,
) -> TrialResult:
    """Run `execute_trial` in a worker process and wait for its result.

    A worker process killed at the hard time limit leaves the trial's run
    RUNNING. This ends that run as a timed-out trial.

    Raises:
        TrialError: the trial failed, or timed out (`TimedOutTrialError`).
    """
    arguments = (
        trial_number, values, data_ref, spec, parent_run_id, tracking_uri, plan
    )
    try:
        return workers.submit(execute_trial, *arguments).result()
    except WorkerTimeoutError as error:
        client = MlflowClient(tracking_uri)
        attempt = (plan or TrialPlan()).attempt
        run_id = find_running_trial_run(client, parent_run_id, trial_number, attempt)
        if run_id is None:
            raise TimedOutTrialError(
                f"Trial {trial_number} timed out, and no RUNNING MLflow run of "
                f"it was left to end: {error}",
                trial_number=trial_number,
                run_id=None,
            ) from error
        raise end_timed_out_trial(
            client,
            run_id,
            trial_number,
            error,
            STOPPED_BY_KILL,
            timeout_seconds=spec.trial_timeout_seconds,
        ) from error
