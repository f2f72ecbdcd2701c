"""The tuning flow: the oracle hands out trials, tasks run them, MLflow records them.

A spec with a `project_name` saves the search as it goes, and a rerun of the
same spec resumes it (see `tasks.project`).
"""

from __future__ import annotations

import contextlib
import gc
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
from prefect.futures import PrefectFuture
from prefect.states import Cancelled, State
from prefect.task_runners import TaskRunner

from flows.dask_engine import (
    check_scheduler,
    check_tracking_store,
    running_on_dask,
    stopping_dask_trials,
)
from flows.events import notify
from flows.interrupts import keeping_sigterm_handler
from flows.trial_loop import TUNER_ID, SearchFailedError, TrialLoop
from tasks.data import DataRef
from tasks.gpus import resolve_gpus
from tasks.interrupted_runs import end_interrupted_search
from tasks.oracles import (
    DEFAULT_MAX_EPOCHS,
    build_oracle,
    oracle_options,
    planned_num_trials,
)
from tasks.preparation import (
    SearchSpaceInfo,
    artifact_key,
    load_data,
    prepare_search_space,
)
from tasks.project import (
    SavedSearch,
    end_interrupted_runs,
    open_project,
    resume_saved_search,
    unfinished_trials,
)
from tasks.results import RegisteredModel, SearchResult, TrialResult
from tasks.search_space import objective_from_spec
from tasks.selection import rank_trials, register_best_model, select_best_trial
from tasks.spec import TuningSpec, load_spec
from tasks.stop_request import SearchInterruptedError, stop_requested
from tasks.tracking import (
    CHALLENGER_PURPOSE,
    PURPOSE_TAG,
    check_tracking_uri,
    end_run,
    ensure_experiment,
    fail_unfinished_runs,
    resolve_tracking_uri,
    start_search_run,
    warm_up_model_logging,
)
from tasks.trial import running_in_workers
from tasks.trial_execution import prepare_trial_inputs
from tasks.workers import TrialWorkers
from tuner_core import HyperParameters, Objective, Oracle

__all__ = ["TUNER_ID", "SearchFailedError", "run_search", "tune_flow", "tune_spec_flow"]

OVERRIDDEN_TAG = "tuneflow.overridden_hyperparameters"
NO_BEST_TAG = "tuneflow.no_best_trial"


@flow(name="tune")
def tune_flow(
    spec_path: str, tracking_uri: str | None = None
) -> SearchResult | State[Any]:
    """Run the search described by the TOML spec file at `spec_path`.

    `tracking_uri` overrides the spec's MLflow store. Without either, the flow
    uses $MLFLOW_TRACKING_URI, then `sqlite:///<cwd>/mlflow.db`. Calling the
    flow returns a `SearchResult`, or raises `SearchInterruptedError` after a
    stop request (`tasks.stop_request`), and the flow run ends Cancelled.
    """
    spec = load_spec(spec_path)
    spec_text = Path(spec_path).read_text(encoding="utf-8")
    return run_search_in_flow(
        spec, tracking_uri, spec_file=(Path(spec_path).name, spec_text)
    )


@flow(name="tune-spec")
def tune_spec_flow(
    spec: TuningSpec, tracking_uri: str | None = None
) -> SearchResult | State[Any]:
    """Run the search described by a spec object, for callers without a spec file.

    It returns and raises as `tune_flow` does.
    """
    return run_search_in_flow(
        spec, tracking_uri, spec_file=("spec.json", spec.model_dump_json(indent=2))
    )


def run_search_in_flow(
    spec: TuningSpec, tracking_uri: str | None, spec_file: tuple[str, str]
) -> SearchResult | State[Any]:
    """Run the search, or return a Cancelled state when the user interrupted it.

    Prefect ends the flow run in the returned state and raises its data, the
    `SearchInterruptedError`, to the flow's caller. Under `tuneflow tune`, a
    SIGTERM requests the stop as Ctrl-C does (`flows.interrupts`).
    """
    try:
        with keeping_sigterm_handler():
            return run_search(spec, tracking_uri, spec_file)
    except SearchInterruptedError as error:
        return Cancelled(message=str(error), data=error)


def run_search(
    spec: TuningSpec, tracking_uri: str | None, spec_file: tuple[str, str]
) -> SearchResult:
    """Run the search inside a running flow. `spec_file` is (file name, text).

    The tracking store, the Dask scheduler, the data, the search space and a
    saved search to resume are checked before the parent run is created, so a
    spec that fails them leaves nothing behind in MLflow.

    Raises:
        SearchInterruptedError: a stop was requested (`tasks.stop_request`).
            The search run and its trial runs still RUNNING end KILLED.
    """
    logger = get_run_logger()
    uri = resolve_tracking_uri(tracking_uri, spec.mlflow.tracking_uri)
    check_tracking_store(spec, uri)
    check_tracking_uri(uri)
    check_scheduler(spec)
    mlflow.set_tracking_uri(uri)
    objective = objective_from_spec(spec)
    project, saved = open_project(spec, uri)

    data_ref = load_data(spec, split_seed=saved.split_seed if saved else None)
    space_info = prepare_search_space(spec)
    space = HyperParameters.from_config(space_info["config"])
    oracle = build_oracle(spec, objective, space)
    finished: dict[str, TrialResult] = {}
    if saved is not None:
        finished = resume_saved_search(oracle, saved, spec, data_ref, space)

    client = MlflowClient(uri)
    experiment_id, parent_run_id = open_search_run(
        client,
        uri,
        spec,
        data_ref,
        objective,
        space_info,
        spec_file,
        resumed=saved,
    )

    try:
        if saved is not None:
            report_resumed_search(client, saved, parent_run_id, finished, oracle)
        warn_ignored_settings(spec)
        with (
            trial_execution(spec, data_ref, uri) as task_runner,
            stopping_dask_trials(task_runner, parent_run_id) as stop_trials,
        ):
            notify("search_started", planned_num_trials(spec), parent_run_id)
            if finished:
                notify("search_resumed", len(finished))
            loop = TrialLoop(
                oracle,
                spec,
                data_ref,
                parent_run_id,
                uri,
                project=project,
                finished=finished,
                task_runner=task_runner,
                stop_trials=stop_trials,
            )
            trials, stop_message = loop.run()
        notify("search_finished", stop_message)

        best, registered = conclude_search(
            client, uri, spec, parent_run_id, trials, objective
        )
    except SearchInterruptedError:
        end_interrupted_search(client, parent_run_id)
        logger.info(
            "Search run %s ended KILLED: the user interrupted it.", parent_run_id
        )
        raise
    except BaseException as error:
        if stop_requested():
            end_interrupted_search(client, parent_run_id)
            raise SearchInterruptedError(
                f"The search failed after the user interrupted it: {error}"
            ) from error
        fail_unfinished_runs(client, parent_run_id, error)
        logger.error("Search run %s failed: %s", parent_run_id, error)
        if isinstance(error, SearchFailedError) and error.trials:
            publish_trials_table(error.trials, objective, spec.mlflow.experiment)
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
    space_info: SearchSpaceInfo,
    spec_file: tuple[str, str],
    resumed: SavedSearch | None = None,
) -> tuple[str, str]:
    """Create the search's parent run; return the experiment id and the run id.

    The run is tagged with the hyperparameters that compile overrides void, and
    with the project and the run it resumes.
    """
    experiment_id = ensure_experiment(client, spec.mlflow.experiment, tracking_uri)
    tags = {
        "tuneflow.oracle": spec.oracle,
        "tuneflow.data_fingerprint": data_ref.fingerprint,
    }
    if space_info["overridden"]:
        tags[OVERRIDDEN_TAG] = ", ".join(space_info["overridden"])
    if spec.project_name is not None:
        tags["tuneflow.project"] = spec.project_name
    if resumed is not None and resumed.search_run_id is not None:
        tags["tuneflow.resumed_from"] = resumed.search_run_id
    parent_run_id = start_search_run(
        client,
        experiment_id,
        params=search_params(spec, data_ref, objective),
        tags={**tags, **spec.mlflow.tags},
        artifacts={
            spec_file[0]: spec_file[1],
            "search_space.txt": space_info["summary"],
        },
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
) -> tuple[TrialResult | None, RegisteredModel | None]:
    """Select and register the best trial, publish the trials table, end the parent run.

    When every completed trial scored NaN, no trial is best and nothing is
    registered, but the search ends FINISHED and returns its trials.

    Raises:
        SearchFailedError: no trial completed.
    """
    if not any(t["status"] == "COMPLETED" for t in trials):
        raise SearchFailedError(
            f"No trial completed out of {len(trials)}. Read the trial runs' "
            "'tuneflow.error' tags or the task logs, fix the cause and rerun.",
            trials,
        )
    publish_trials_table(trials, objective, spec.mlflow.experiment)

    best = select_best_trial(trials, objective.name, objective.direction)
    if best is None:
        message = (
            f"Every completed trial scored {objective.name} = NaN, so no trial is "
            "best and no model is registered. Check the data and the learning "
            "rates for overflow, then rerun."
        )
        get_run_logger().warning("%s", message)
        client.set_tag(parent_run_id, NO_BEST_TAG, message)
        end_run(client, parent_run_id, "FINISHED")
        return None, None

    registered = None
    if spec.mlflow.registered_model_name is not None:
        registered = register_best_model(
            best, spec.mlflow.registered_model_name, objective.name, tracking_uri
        )
    elif spec.mlflow.tags.get(PURPOSE_TAG) == CHALLENGER_PURPOSE:
        get_run_logger().info(
            "This challenger search registers no model: the retraining flow "
            "compares its best trial with the champion and registers it if it wins."
        )
    else:
        get_run_logger().info(
            "The spec sets no [mlflow] registered_model_name, so no model is "
            "registered."
        )

    record_best(client, parent_run_id, best, objective)
    end_run(client, parent_run_id, "FINISHED")
    return best, registered


def report_resumed_search(
    client: MlflowClient,
    saved: SavedSearch,
    parent_run_id: str,
    finished: dict[str, TrialResult],
    oracle: Oracle,
) -> None:
    """End the stopped search's RUNNING runs as KILLED and log what resumes."""
    killed: list[str] = []
    if saved.search_run_id is not None:
        killed = end_interrupted_runs(client, saved.search_run_id, parent_run_id)
    interrupted = [trial.number for trial in unfinished_trials(oracle)]
    get_run_logger().info(
        "Resuming the search saved in %s: %d finished trial(s) kept, interrupted "
        "trial(s) %s run again, max_trials=%s. %d MLflow run(s) of the stopped "
        "search ended as KILLED.",
        saved.folder,
        len(finished),
        interrupted,
        oracle.max_trials,
        len(killed),
    )


def warn_ignored_settings(spec: TuningSpec) -> None:
    """Warn once about spec settings that the chosen oracle ignores."""
    if spec.oracle == "hyperband" and spec.epochs_are_set():
        get_run_logger().warning(
            "Hyperband ignores [fit] epochs = %d: each trial trains for the epoch "
            "budget of its bracket round, up to max_epochs = %s. Remove epochs from "
            "[fit], and set max_epochs to change the largest budget.",
            spec.fit.epochs,
            spec.max_epochs or DEFAULT_MAX_EPOCHS,
        )


@contextlib.contextmanager
def trial_execution(
    spec: TuningSpec, data_ref: DataRef, tracking_uri: str
) -> Iterator[TaskRunner[PrefectFuture[Any]] | None]:
    """Start worker processes for the trials when the spec's settings require them.

    Each worker loads the data and builds the search space before its first
    trial. Without worker processes, trials train in the flow's process, one at
    a time, after MLflow's one-time model-logging set-up runs here (see
    `warm_up_model_logging`). With engine = "dask", this yields the Dask task runner that the
    trial tasks go to; otherwise it yields None.
    """
    if spec.engine == "dask":
        with running_on_dask(spec, tracking_uri) as task_runner:
            yield task_runner
        return
    if not spec.uses_worker_processes():
        warm_up_model_logging()
        with frozen_garbage_collection():
            yield None
        return

    logger = get_run_logger()
    with TrialWorkers(
        max_workers=spec.concurrency,
        max_trials_per_worker=spec.max_trials_per_worker,
        expected_trials=spec.max_trials,
        preparation=(prepare_trial_inputs, (data_ref, spec, tracking_uri)),
        wait_for_exit=False,
        gpu_ids=resolve_gpus(spec.gpus),
        trial_timeout_seconds=spec.trial_timeout_seconds,
    ) as workers:
        seconds = workers.warm_up()
        logger.info(
            "Started %d worker process(es) in %.1f s. Each is replaced after %d "
            "trials.",
            spec.concurrency,
            seconds,
            spec.max_trials_per_worker,
        )
        if any(gpu is not None for gpu in workers.gpus):
            logger.info("Worker slots run on GPUs %s, one each.", workers.gpus)
        with running_in_workers(workers):
            yield None


# Allocations between two collections of the youngest generation during a
# search in this process (Python's default is 700).
SEARCH_GC_THRESHOLD = 20_000


@contextlib.contextmanager
def frozen_garbage_collection() -> Iterator[None]:
    """Leave the objects that exist now out of garbage collections until the exit.

    With Prefect, MLflow and TensorFlow loaded, the flow's process contains
    millions of objects, and each full collection that training triggers
    scans them all. Freezing them cut the collections during a 10-trial
    digits search from about 1.0 s to 0.4 s (benchmarks/overhead.py). Objects
    created later, such as each trial's model, are collected as usual, and
    the frozen ones are collected again after the exit.

    Inside, the youngest generation is also collected after
    `SEARCH_GC_THRESHOLD` allocations instead of Python's 700, because tracing
    a model's training step creates many short-lived objects. In a probe of 10
    plain fits, collections took 0.04 s with this threshold and 0.05-0.58 s
    with the default. A 10-trial search still ran one full collection of
    about 0.6 s with it.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(SEARCH_GC_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


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
        "engine": spec.engine,
        "objective": objective.name,
        "direction": objective.direction,
        "tune_new_entries": spec.tune_new_entries,
        "allow_new_entries": spec.allow_new_entries,
        "executions_per_trial": spec.executions_per_trial,
        "max_retries_per_trial": spec.max_retries_per_trial,
        "max_consecutive_failed_trials": spec.max_consecutive_failed_trials,
        "trial_timeout_seconds": spec.trial_timeout_seconds,
        **oracle_options(spec),
        "epochs": spec.fit.epochs if spec.oracle != "hyperband" else None,
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
    if spec.hypermodel_args:
        params["hypermodel_args"] = spec.hypermodel_args
    if spec.project_name is not None:
        params["project_name"] = spec.project_name
    if spec.engine == "dask" and spec.dask.address is not None:
        params["dask.address"] = spec.dask.address
    elif spec.engine == "dask":
        params["dask.n_workers"] = spec.dask.n_workers or spec.concurrency
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
    """Publish a Prefect table artifact with one row per trial, best first.

    Trials with a finite objective rank first, then those that scored NaN.
    Failed trials come last, without a rank.
    """
    names = list(dict.fromkeys(name for t in trials for name in t["hyperparameters"]))
    rows = []
    for rank, t in rank_trials(trials, objective):
        score = t["score"]
        if score is not None and math.isnan(score):
            # JSON has no NaN, and Prefect sends the table as JSON.
            score = "NaN"
        rows.append(
            {
                "rank": rank,
                "trial": t["number"],
                "status": t["status"],
                objective.name: score,
                "best_epoch": t["best_epoch"],
                **{name: t["hyperparameters"].get(name) for name in names},
                "mlflow_run_id": t["run_id"],
            }
        )
    create_table_artifact(
        key=artifact_key("trials", experiment),
        table=rows,
        description=f"Trials of the search, {objective.name} ({objective.direction})",
    )
