"""The tuning flow: the oracle hands out trials, tasks run them, MLflow records them."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, RunTag
from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.futures import PrefectFuture, as_completed, wait

from flows.events import notify
from tasks.data import DataRef
from tasks.preparation import artifact_key, load_data, prepare_search_space
from tasks.results import RegisteredModel, SearchResult, TrialResult
from tasks.search_space import objective_from_spec
from tasks.selection import register_best_model, select_best_trial
from tasks.spec import TuningSpec, load_spec
from tasks.tracking import (
    end_run,
    ensure_experiment,
    fail_unfinished_runs,
    resolve_tracking_uri,
    start_search_run,
)
from tasks.trial import TrialError, run_trial, running_in_workers
from tasks.workers import TrialWorkers
from tuner_core import HyperParameters, Objective, Trial, TrialStatus
from tuner_core.oracles import RandomSearchOracle

TUNER_ID = "tuneflow"
ORACLES = {"random": RandomSearchOracle}


class SearchFailedError(RuntimeError):
    """Error for a search that failed trials stopped, raised after its runs ended."""


@flow(name="tune")
def tune_flow(spec_path: str, tracking_uri: str | None = None) -> SearchResult:
    """Run the search described by the TOML spec file at `spec_path`.

    `tracking_uri` overrides the spec's MLflow store. Without either, the flow
    uses $MLFLOW_TRACKING_URI, then `sqlite:///<cwd>/mlflow.db`.
    """
    spec = load_spec(spec_path)
    spec_text = Path(spec_path).read_text(encoding="utf-8")
    return run_search(spec, tracking_uri, spec_file=(Path(spec_path).name, spec_text))


@flow(name="tune-spec")
def tune_spec_flow(spec: TuningSpec, tracking_uri: str | None = None) -> SearchResult:
    """Run the search described by a spec object, for callers without a spec file."""
    return run_search(
        spec, tracking_uri, spec_file=("spec.json", spec.model_dump_json(indent=2))
    )


def run_search(
    spec: TuningSpec, tracking_uri: str | None, spec_file: tuple[str, str]
) -> SearchResult:
    """Run the search inside a running flow. `spec_file` is (file name, text).

    The data and search space are checked before the parent run is created,
    so a spec that fails them leaves nothing behind in MLflow.
    """
    logger = get_run_logger()
    uri = resolve_tracking_uri(tracking_uri, spec.mlflow.tracking_uri)
    mlflow.set_tracking_uri(uri)
    objective = objective_from_spec(spec)

    data_ref = load_data(spec)
    space_info = prepare_search_space(spec)
    space = HyperParameters.from_config(space_info["config"])

    client = MlflowClient(uri)
    experiment_id, parent_run_id = open_search_run(
        client, uri, spec, data_ref, objective, space_info["summary"], spec_file
    )

    try:
        oracle = ORACLES[spec.oracle](
            objective=objective,
            max_trials=spec.max_trials,
            seed=spec.seed,
            hyperparameters=space,
        )
        with trial_execution(spec):
            notify("search_started", spec.max_trials, parent_run_id)
            trials, stop_message = run_trials(
                oracle, spec, data_ref, parent_run_id, uri
            )
        notify("search_finished", stop_message)

        best, registered = conclude_search(
            client, uri, spec, parent_run_id, trials, objective
        )
    except BaseException as error:
        fail_unfinished_runs(client, parent_run_id, error)
        logger.error("Search run %s failed: %s", parent_run_id, error)
        raise

    return SearchResult(
        experiment_name=spec.mlflow.experiment,
        experiment_id=experiment_id,
        parent_run_id=parent_run_id,
        tracking_uri=uri,
        objective=objective.name,
        direction=objective.direction,
        stop_message=stop_message,
        trials=trials,
        best_trial=best,
        registered_model=registered,
    )


def open_search_run(
    client: MlflowClient,
    tracking_uri: str,
    spec: TuningSpec,
    data_ref: DataRef,
    objective: Objective,
    summary: str,
    spec_file: tuple[str, str],
) -> tuple[str, str]:
    """Create the search's parent run; return the experiment id and the run id."""
    experiment_id = ensure_experiment(client, spec.mlflow.experiment, tracking_uri)
    parent_run_id = start_search_run(
        client,
        experiment_id,
        params=search_params(spec, data_ref, objective),
        tags={
            "tuneflow.oracle": spec.oracle,
            "tuneflow.data_fingerprint": data_ref.fingerprint,
            **spec.mlflow.tags,
        },
        artifacts={spec_file[0]: spec_file[1], "search_space.txt": summary},
    )
    get_run_logger().info(
        "Search run %s started in experiment %r (%s): %s oracle, up to %d trials.",
        parent_run_id,
        spec.mlflow.experiment,
        tracking_uri,
        spec.oracle,
        spec.max_trials,
    )
    return experiment_id, parent_run_id


def conclude_search(
    client: MlflowClient,
    tracking_uri: str,
    spec: TuningSpec,
    parent_run_id: str,
    trials: list[TrialResult],
    objective: Objective,
) -> tuple[TrialResult, RegisteredModel | None]:
    """Select and register the best trial, publish the trials table, end the parent run.

    Raises:
        SearchFailedError: no trial completed.
    """
    best = select_best_trial(trials, objective.name, objective.direction)
    if best is None:
        raise SearchFailedError(
            f"No trial completed out of {len(trials)}. Read the trial runs' "
            "'tuneflow.error' tags or the task logs, fix the cause and rerun."
        )

    registered = None
    if spec.mlflow.registered_model_name is not None:
        registered = register_best_model(
            best, spec.mlflow.registered_model_name, objective.name, tracking_uri
        )
    else:
        get_run_logger().info(
            "The spec sets no [mlflow] registered_model_name, so no model is "
            "registered."
        )

    publish_trials_table(trials, objective, spec.mlflow.experiment)
    record_best(client, parent_run_id, best, objective)
    end_run(client, parent_run_id, "FINISHED")
    return best, registered


@contextlib.contextmanager
def trial_execution(spec: TuningSpec) -> Iterator[None]:
    """Start worker processes for the trials when the spec's settings require them.

    Without worker processes, trials train in the flow's process, one at a time.
    """
    if not spec.uses_worker_processes():
        yield
        return

    logger = get_run_logger()
    with TrialWorkers(
        max_workers=spec.concurrency, max_trials_per_worker=spec.max_trials_per_worker
    ) as workers:
        seconds = workers.warm_up()
        logger.info(
            "Started %d worker process(es) in %.1f s. Each is replaced after %d "
            "trials.",
            spec.concurrency,
            seconds,
            spec.max_trials_per_worker,
        )
        with running_in_workers(workers):
            yield


def run_trials(
    oracle: RandomSearchOracle,
    spec: TuningSpec,
    data_ref: DataRef,
    parent_run_id: str,
    tracking_uri: str,
) -> tuple[list[TrialResult], str | None]:
    """Ask the oracle for trials and run them, at most `spec.concurrency` at a time.

    Returns the trial results in trial order and the oracle's reason to stop.

    Raises:
        SearchFailedError: a trial failed in a way every trial would, or
            `oracle.max_consecutive_failed_trials` trials failed in a row.
    """
    logger = get_run_logger()
    results: list[TrialResult] = []
    running: dict[PrefectFuture[TrialResult], Trial] = {}
    stop_message: str | None = None
    consecutive_failures = 0

    while True:
        while stop_message is None and len(running) < spec.concurrency:
            trial = oracle.create_trial(TUNER_ID)
            if trial.status == TrialStatus.STOPPED:
                stop_message = trial.message
                logger.info("The oracle stopped the search: %s.", stop_message)
                break
            values = trial.hyperparameters.values
            future = run_trial.submit(
                trial.number, values, data_ref, spec, parent_run_id, tracking_uri
            )
            running[future] = trial
            notify("trial_started", trial.number, values)
        if not running:
            break

        future = next(as_completed(list(running)))
        trial = running.pop(future)
        result, failure = collect_trial(future, trial, oracle)
        results.append(result)
        notify("trial_finished", result)

        consecutive_failures = consecutive_failures + 1 if failure is not None else 0
        if failure is not None and (
            not isinstance(failure, TrialError)
            or failure.fatal
            or consecutive_failures >= oracle.max_consecutive_failed_trials
        ):
            wait(list(running))
            raise SearchFailedError(
                f"The search stopped after trial {trial.number} failed "
                f"({consecutive_failures} failure(s) in a row): {failure}"
            ) from failure

    results.sort(key=lambda r: r["number"])
    return results, stop_message


def collect_trial(
    future: PrefectFuture[TrialResult], trial: Trial, oracle: RandomSearchOracle
) -> tuple[TrialResult, BaseException | None]:
    """Report a finished trial to the oracle, returning its result and its error."""
    try:
        result = future.result()
    except Exception as error:
        oracle.end_trial(trial, TrialStatus.FAILED, message=str(error))
        failed = TrialResult(
            number=trial.number,
            status="FAILED",
            hyperparameters=dict(trial.hyperparameters.values),
            score=None,
            best_epoch=None,
            metrics={},
            run_id=getattr(error, "run_id", None),
            model_uri=None,
            message=str(error),
        )
        return failed, error

    oracle.end_trial(
        trial,
        TrialStatus.COMPLETED,
        score=result["score"],
        best_step=result["best_epoch"],
        values=result["hyperparameters"],
    )
    return result, None


def search_params(
    spec: TuningSpec, data_ref: DataRef, objective: Objective
) -> dict[str, Any]:
    """Return the parent run's params: the search settings and the data reference."""
    params: dict[str, Any] = {
        "hypermodel": spec.hypermodel,
        "oracle": spec.oracle,
        "max_trials": spec.max_trials,
        "seed": spec.seed,
        "concurrency": spec.concurrency,
        "objective": objective.name,
        "direction": objective.direction,
        "tune_new_entries": spec.tune_new_entries,
        "allow_new_entries": spec.allow_new_entries,
        "epochs": spec.fit.epochs,
        "batch_size": spec.fit.batch_size,
        "data.source": data_ref.source,
        "data.path": data_ref.path,
        "data.num_samples": data_ref.num_samples,
        "data.validation_split": data_ref.validation_split,
        "data.split_seed": data_ref.seed,
        "data.fingerprint": data_ref.fingerprint,
    }
    if spec.compile.optimizer is not None:
        params["compile.optimizer"] = spec.compile.optimizer
    if spec.compile.loss is not None:
        params["compile.loss"] = spec.compile.loss
    if spec.compile.metrics is not None:
        params["compile.metrics"] = spec.compile.metrics
    return params


def record_best(
    client: MlflowClient, parent_run_id: str, best: TrialResult, objective: Objective
) -> None:
    """Log the best trial's number, run id and score on the parent run."""
    score = best["score"] if best["score"] is not None else math.nan
    timestamp = int(time.time() * 1000)
    client.log_batch(
        parent_run_id,
        metrics=[Metric(f"best_{objective.name}", score, timestamp, 0)],
        tags=[
            RunTag("tuneflow.best_trial", str(best["number"])),
            RunTag("tuneflow.best_run_id", str(best["run_id"])),
        ],
    )


def publish_trials_table(
    trials: list[TrialResult], objective: Objective, experiment: str
) -> None:
    """Publish a Prefect table artifact with one row per trial."""
    names = list(dict.fromkeys(name for t in trials for name in t["hyperparameters"]))
    rows = [
        {
            "trial": t["number"],
            "status": t["status"],
            objective.name: t["score"],
            "best_epoch": t["best_epoch"],
            **{name: t["hyperparameters"].get(name) for name in names},
            "mlflow_run_id": t["run_id"],
        }
        for t in trials
    ]
    create_table_artifact(
        key=artifact_key("trials", experiment),
        table=rows,
        description=f"Trials of the search, {objective.name} ({objective.direction})",
    )
