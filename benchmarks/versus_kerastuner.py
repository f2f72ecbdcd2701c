"""Time the same random search with KerasTuner 1.4.8 and with this pipeline.

1. Runs the digits search of `examples/digits.toml` (10 trials x 3 epochs by
   default: the same build function, data split, batch size and seed) with
   KerasTuner's `RandomSearch`, in this process, writing to a temporary folder.
2. Runs it through the Prefect flow with full MLflow tracking on a new SQLite
   store, twice: one trial at a time in the flow's process (concurrency 1),
   and two at a time in worker processes (concurrency 2).
3. Prints the wall seconds of each and the ratios ours / KerasTuner. Both
   pipeline runs are compared with the same sequential KerasTuner search,
   because KerasTuner runs trials in parallel only with its chief and worker
   processes talking over gRPC, which this script does not set up.
4. Trains the configurations each side drew bare, in this process, and
   prints both times. The two libraries draw different configurations from
   the same space, and this shows how much of a difference the draws explain.

KerasTuner is timed around its `search()` call. The pipeline is timed from
the moment its first trial starts to the moment the flow returns its result.
Prefect's start-up, the data and search-space preparation, and the start of
the first worker processes fall outside, and the script prints Prefect's
start-up and the worker start-up on their own lines. One fit before any
timing starts TensorFlow in this process, so its one-time start-up falls on
neither side. Worker processes pay their own TensorFlow start-up before the
first trial, and their first graph tracing inside the timed search.

Run:  .venv/bin/python benchmarks/versus_kerastuner.py [--trials 10] [--epochs 3]
      .venv/bin/python benchmarks/versus_kerastuner.py --quick   # 4 trials x 1 epoch
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    digits_dataset,
    digits_spec,
    run_bare,
    tree_cpu_seconds,
    warm_up_tensorflow,
)
from _pipeline import empty_flow, recording_worker_start_up, run_search

import keras_tuner  # noqa: E402
from digits_model import build_model  # noqa: E402
from tasks.results import TrialResult  # noqa: E402
from tasks.spec import TuningSpec  # noqa: E402

SEQUENTIAL_TARGET = 0.8
TWO_WORKERS_TARGET = 0.6


def time_kerastuner(
    spec: TuningSpec, folder: Path
) -> tuple[float, float, list[dict[str, Any]]]:
    """Run the spec's random search with KerasTuner.

    Returns its wall and CPU seconds, and the hyperparameter values of its trials.
    """
    dataset = digits_dataset(spec)
    tuner = keras_tuner.RandomSearch(
        build_model,
        objective=spec.objective.name,
        max_trials=spec.max_trials,
        seed=spec.seed,
        directory=str(folder),
        project_name="versus-kerastuner",
        overwrite=True,
    )
    started = time.perf_counter()
    started_cpu = tree_cpu_seconds()
    tuner.search(
        dataset.x_train,
        dataset.y_train,
        epochs=spec.fit.epochs,
        batch_size=spec.fit.batch_size,
        validation_data=(dataset.x_val, dataset.y_val),
        verbose=0,
    )
    wall = time.perf_counter() - started
    cpu = tree_cpu_seconds() - started_cpu

    trials = list(tuner.oracle.trials.values())
    if len(trials) != spec.max_trials:
        print(f"NOTE: KerasTuner ran {len(trials)} trials, not {spec.max_trials}.")
    return wall, cpu, [{"hyperparameters": t.hyperparameters.values} for t in trials]


def time_pipeline(
    spec: TuningSpec,
) -> tuple[float, float, list[TrialResult], list[float]]:
    """Run the spec through the flow.

    Returns its wall and CPU seconds, its trials, and the seconds each worker
    pool took to start.
    """
    with recording_worker_start_up() as start_up_seconds:
        wall, cpu, trials, _ = run_search(spec)
    completed = sum(1 for trial in trials if trial["status"] == "COMPLETED")
    if completed != spec.max_trials:
        print(f"NOTE: the pipeline completed {completed} trials of {spec.max_trials}.")
    return wall, cpu, trials, start_up_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="trials per search")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per trial")
    parser.add_argument(
        "--quick", action="store_true", help="4 trials x 1 epoch, to check the script"
    )
    args = parser.parse_args()
    if args.quick:
        args.trials, args.epochs = 4, 1

    started = time.perf_counter()
    empty_flow()
    seconds = time.perf_counter() - started
    print(f"Prefect start-up (first flow call in this process): {seconds:.1f} s")

    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder)
        settings = {"max_trials": args.trials, "epochs": args.epochs}
        sequential = digits_spec(store, "versus-sequential", concurrency=1, **settings)
        two_workers = digits_spec(store, "versus-2-workers", concurrency=2, **settings)

        seconds = warm_up_tensorflow(sequential)
        print(f"TensorFlow warm-up in this process (one 1-epoch fit): {seconds:.1f} s")
        print(
            f"Search: {args.trials} trials x {args.epochs} epochs, random search, "
            f"seed {sequential.seed}. KerasTuner is timed around search(); the "
            "pipeline from its first trial's start to the flow's result."
        )

        kt_wall, kt_cpu, kt_trials = time_kerastuner(sequential, store / "kerastuner")
        print(f"KerasTuner RandomSearch: {kt_wall:.1f} s wall / {kt_cpu:.1f} s CPU")

        wall, cpu, our_trials, _ = time_pipeline(sequential)
        print(
            f"tuneflow, concurrency 1 (flow process): {wall:.1f} s wall / "
            f"{cpu:.1f} s CPU; ratio to KerasTuner {wall / kt_wall:.2f} "
            f"(target <= {SEQUENTIAL_TARGET})"
        )

        wall, cpu, _, start_ups = time_pipeline(two_workers)
        start_up = ", ".join(f"{seconds:.1f} s" for seconds in start_ups) or "none"
        print(
            f"tuneflow worker start-up (2 processes, before the first trial, not "
            f"timed): {start_up}"
        )
        print(
            f"tuneflow, concurrency 2 (2 worker processes): {wall:.1f} s wall / "
            f"{cpu:.1f} s CPU (CPU includes the workers); ratio to KerasTuner "
            f"{wall / kt_wall:.2f} (target <= {TWO_WORKERS_TARGET})"
        )

        # Each library draws its own configurations, and bigger models train
        # slower, so this shows how much of the gap the draws explain.
        kt_bare, _ = run_bare(sequential, kt_trials)
        our_bare, _ = run_bare(sequential, our_trials)
        print(
            f"Bare Keras fits of the configurations each side drew (no tuner, this "
            f"process): KerasTuner's {kt_bare:.1f} s, the pipeline's {our_bare:.1f} s"
        )


if __name__ == "__main__":
    main()
