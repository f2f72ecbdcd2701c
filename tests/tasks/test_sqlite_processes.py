"""Several processes run trials against one SQLite store at the same moment.

MLflow (3.17) sets SQLite's busy_timeout to 20 s on each session, so a write
waits for another process's write instead of failing with "database is
locked". This test is the proof that the worker processes of a search with
concurrency above 1 can share the default SQLite store.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from mlflow import MlflowClient
from trial_processes import run_trials_together

from tasks.data import make_data_ref
from tasks.spec import parse_spec
from tasks.tracking import WORKER_TAG, ensure_experiment, start_search_run

NUM_PROCESSES = 3
TRIALS_PER_PROCESS = 3
EPOCHS = 3
BARRIER_TIMEOUT_SECONDS = 300.0
VALUES = {"units": 8, "dropout": False, "learning_rate": 0.01}
PER_EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


def test_processes_share_sqlite_store(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    spec = parse_spec(
        {
            "hypermodel": "hypermodels:build_tiny_model",
            "objective": "val_accuracy",
            "seed": 3,
            "data": {"path": str(digits_npz)},
            "fit": {"epochs": EPOCHS, "batch_size": 64},
        },
        base_dir=tmp_path,
    )
    data_ref = make_data_ref(spec.data, spec.seed)
    client = MlflowClient(tracking_uri)
    experiment_id = ensure_experiment(client, "sqlite-processes", tracking_uri)
    parent_run_id = start_search_run(
        client, experiment_id, params={}, tags={}, artifacts={}
    )

    context = multiprocessing.get_context("spawn")
    with (
        context.Manager() as manager,
        ProcessPoolExecutor(NUM_PROCESSES, mp_context=context) as pool,
    ):
        barrier = manager.Barrier(NUM_PROCESSES, timeout=BARRIER_TIMEOUT_SECONDS)
        futures = [
            pool.submit(
                run_trials_together,
                range(index * TRIALS_PER_PROCESS, (index + 1) * TRIALS_PER_PROCESS),
                VALUES,
                data_ref,
                spec,
                parent_run_id,
                tracking_uri,
                barrier,
            )
            for index in range(NUM_PROCESSES)
        ]
        outcomes = [future.result() for future in futures]

    errors = [error for _, process_errors in outcomes for error in process_errors]
    results = [result for process_results, _ in outcomes for result in process_results]
    assert errors == []
    assert len(results) == NUM_PROCESSES * TRIALS_PER_PROCESS

    children = client.search_runs(
        [experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'"
    )
    assert len(children) == NUM_PROCESSES * TRIALS_PER_PROCESS
    assert len({child.data.tags[WORKER_TAG] for child in children}) == NUM_PROCESSES
    for child in children:
        assert child.info.status == "FINISHED"
        for metric in PER_EPOCH_METRICS:
            history = client.get_metric_history(child.info.run_id, metric)
            steps = sorted(point.step for point in history)
            assert steps == list(range(EPOCHS)), (child.info.run_name, metric)
    for result in results:
        model_id = result["model_uri"].removeprefix("models:/")
        assert client.get_logged_model(model_id).source_run_id == result["run_id"]
