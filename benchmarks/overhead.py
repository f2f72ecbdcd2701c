"""Measure the pipeline's overhead over bare Keras fits, and its memory growth.

1. Runs the digits search (10 trials x 3 epochs by default) through the Prefect
   flow with full MLflow tracking, timing it from the first trial to the result.
2. Trains the same configurations bare in this process: the same build function,
   data, epochs and batch size, with no tuner and no tracking.
3. Prints the ratio of the two, and Prefect's start-up time on its own line.
   One fit before both measurements starts TensorFlow in this process, so its
   one-time start-up falls on neither side. Worker processes still pay theirs
   inside the search.
4. Runs a 30-trial search (1 epoch each) and prints how much the resident memory
   of the flow's process and its worker processes grew from trial 5 to trial 30.

Each search runs twice: with trials in the flow's process and with trials in
worker processes that are replaced every 10 trials.

Run:  .venv/bin/python benchmarks/overhead.py [--trials 10] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for name, value in (
    ("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
    ("MLFLOW_DISABLE_TELEMETRY", "true"),
    ("DO_NOT_TRACK", "true"),
    ("TF_CPP_MIN_LOG_LEVEL", "3"),
    ("PREFECT_LOGGING_LEVEL", "WARNING"),
):
    os.environ.setdefault(name, value)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

import keras  # noqa: E402
import psutil  # noqa: E402
from prefect import flow  # noqa: E402

import tuner_core  # noqa: E402
from digits_model import build_model  # noqa: E402
from flows.events import SearchListener, listening  # noqa: E402
from flows.tuning import tune_spec_flow  # noqa: E402
from tasks.data import load_dataset, make_data_ref  # noqa: E402
from tasks.results import TrialResult  # noqa: E402
from tasks.spec import TuningSpec, parse_spec  # noqa: E402

SPEC_PATH = ROOT / "examples" / "digits.toml"
MEMORY_TRIALS = 30
MEMORY_FROM_TRIAL = 5


class Clock(SearchListener):
    """Records when the first trial starts and the memory after each trial."""

    def __init__(self) -> None:
        self.first_trial_at: float | None = None
        self.first_trial_cpu: float | None = None
        self.rss_mb: list[float] = []

    def trial_started(self, number: int, values: dict[str, Any]) -> None:
        if self.first_trial_at is None:
            self.first_trial_at = time.perf_counter()
            self.first_trial_cpu = tree_cpu_seconds()

    def trial_finished(self, result: TrialResult) -> None:
        self.rss_mb.append(tree_rss_mb())


def tree_cpu_seconds() -> float:
    """Return the CPU seconds of this process, its live children and its reaped ones.

    The children include the temporary Prefect server and the worker processes,
    so the search's CPU time counts all the work it causes.
    """
    process = psutil.Process()
    own = process.cpu_times()
    total = own.user + own.system
    for child in process.children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    reaped = os.times()
    return total + reaped.children_user + reaped.children_system


def tree_rss_mb() -> float:
    """Return the resident memory of this process and all its children, in MB."""
    process = psutil.Process()
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def make_spec(
    store: Path, trials: int, epochs: int, workers: bool, continuous: bool
) -> TuningSpec:
    data = tomllib.loads(SPEC_PATH.read_text())
    data["max_trials"] = trials
    data["fit"]["epochs"] = epochs
    data["worker_processes"] = workers
    data["mlflow"]["tracking_uri"] = f"sqlite:///{store}/mlflow.db"
    data["mlflow"]["experiment"] = f"overhead-{'workers' if workers else 'inline'}"
    if continuous:
        # A continuous learning rate keeps 30 trials from exhausting the space.
        data["hyperparameters"] = [
            {
                "name": "learning_rate",
                "type": "Float",
                "min_value": 1e-4,
                "max_value": 1e-2,
                "sampling": "log",
            }
        ]
    return parse_spec(data, base_dir=SPEC_PATH.parent)


def run_search(spec: TuningSpec) -> tuple[float, float, list[TrialResult], list[float]]:
    """Run the search; return its wall and CPU seconds from the first trial on."""
    clock = Clock()
    with listening(clock):
        result = tune_spec_flow(spec)
    finished_at = time.perf_counter()
    finished_cpu = tree_cpu_seconds()
    assert clock.first_trial_at is not None and clock.first_trial_cpu is not None
    wall = finished_at - clock.first_trial_at
    return wall, finished_cpu - clock.first_trial_cpu, result.trials, clock.rss_mb


def run_bare(spec: TuningSpec, trials: list[TrialResult]) -> tuple[float, float]:
    """Train each trial's configuration with plain Keras; return wall and CPU seconds."""
    dataset = load_dataset(make_data_ref(spec.data, spec.seed))
    started = time.perf_counter()
    started_cpu = tree_cpu_seconds()
    for trial in trials:
        # The same reset as the pipeline's: no full garbage collection per build.
        keras.backend.clear_session(free_memory=False)
        model = build_model(_fixed(trial["hyperparameters"]))
        model.fit(
            dataset.x_train,
            dataset.y_train,
            epochs=spec.fit.epochs,
            batch_size=spec.fit.batch_size,
            validation_data=(dataset.x_val, dataset.y_val),
            verbose=0,
        )
    return time.perf_counter() - started, tree_cpu_seconds() - started_cpu


def _fixed(values: dict[str, Any]) -> tuner_core.HyperParameters:
    """Return a HyperParameters whose every name is fixed to the trial's value."""
    hp = tuner_core.HyperParameters()
    for name, value in values.items():
        hp.Fixed(name, value)
    hp.mark_overrides()
    return hp


def warm_up_tensorflow(spec: TuningSpec) -> float:
    """Fit one model once, so neither side pays TensorFlow's one-time start-up."""
    started = time.perf_counter()
    run_bare(spec, [{"hyperparameters": {}}])  # type: ignore[list-item]
    return time.perf_counter() - started


@flow(name="prefect-start-up")
def empty_flow() -> None:
    """Do nothing, so that timing it measures Prefect's start-up alone."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--memory-trials", type=int, default=MEMORY_TRIALS)
    args = parser.parse_args()

    started = time.perf_counter()
    empty_flow()
    seconds = time.perf_counter() - started
    print(f"Prefect start-up (first flow call in this process): {seconds:.1f} s")

    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder)
        warm_up_spec = make_spec(store, 1, 1, workers=False, continuous=False)
        seconds = warm_up_tensorflow(warm_up_spec)
        print(f"TensorFlow warm-up in this process (one 1-epoch fit): {seconds:.1f} s")
        for workers in (False, True):
            mode = "worker processes" if workers else "flow process"
            spec = make_spec(store, args.trials, args.epochs, workers, continuous=False)
            search_wall, search_cpu, trials, _ = run_search(spec)
            bare_wall, bare_cpu = run_bare(spec, trials)
            print(
                f"[{mode}] {len(trials)} trials x {args.epochs} epochs: search "
                f"{search_wall:.1f} s wall / {search_cpu:.1f} s CPU (first trial to "
                f"result), bare fits {bare_wall:.1f} s wall / {bare_cpu:.1f} s CPU; "
                f"wall ratio {search_wall / bare_wall:.2f} (target <= 1.10), CPU "
                f"ratio {search_cpu / bare_cpu:.2f}"
            )

        for workers in (False, True):
            mode = "worker processes" if workers else "flow process"
            spec = make_spec(store, args.memory_trials, 1, workers, continuous=True)
            _, _, trials, rss = run_search(spec)
            growth = rss[-1] - rss[MEMORY_FROM_TRIAL - 1]
            print(
                f"[{mode}] resident memory after trial {MEMORY_FROM_TRIAL}: "
                f"{rss[MEMORY_FROM_TRIAL - 1]:.0f} MB, after trial {len(rss)}: "
                f"{rss[-1]:.0f} MB, growth {growth:.0f} MB (target < 100 MB)"
            )


if __name__ == "__main__":
    main()
