"""Measure the pipeline's overhead over bare Keras fits, and its memory growth.

1. Runs the digits search (10 trials x 3 epochs by default) through the Prefect
   flow with full MLflow tracking, timing it from the first trial to the result.
2. Trains the same configurations bare in this process: the same build function,
   data, epochs and batch size, with no tuner and no tracking.
3. Prints the ratio of the two, and Prefect's start-up time on its own line.
   One fit before both measurements starts TensorFlow in this process, so its
   one-time start-up falls on neither side. Worker processes still pay theirs
   inside the search. Steps 1 and 2 alternate `--repeats` times (default 5),
   and the median ratio is the result: a full garbage collection of about
   0.5 s lands on either side at random, and the speed of this shared machine
   drifts between the two sides, which moves one ratio by up to 0.1. Each run
   also prints the difference per trial in milliseconds, which depends less
   on how fast the fits ran.
   With trials in this process, it also prints the seconds spent inside
   `model.fit` on each side, which separates faster fits in the trials from
   the rest of the overhead.
4. Runs a 30-trial search (1 epoch each) and prints how much the resident memory
   of the flow's process and its worker processes grew from trial 5 to trial 30.

Each search runs twice: with trials in the flow's process and with trials in
worker processes that are replaced every 20 trials.

Run:  .venv/bin/python benchmarks/overhead.py [--trials 10] [--epochs 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _common import SPEC_PATH, run_bare, timing_fits, tomllib, warm_up_tensorflow
from _pipeline import empty_flow, run_search

from tasks.spec import TuningSpec, parse_spec

MEMORY_TRIALS = 30
MEMORY_FROM_TRIAL = 5


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--memory-trials", type=int, default=MEMORY_TRIALS)
    parser.add_argument("--repeats", type=int, default=5)
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
            ratios = []
            extra_ms = []
            for repeat in range(1, args.repeats + 1):
                with timing_fits() as search_fits:
                    search_wall, search_cpu, trials, _ = run_search(spec)
                with timing_fits() as bare_fits:
                    bare_wall, bare_cpu = run_bare(spec, trials)
                ratios.append(search_wall / bare_wall)
                extra_ms.append(1000 * (search_wall - bare_wall) / len(trials))
                fits = (
                    f"; inside model.fit: search {sum(search_fits):.1f} s, bare "
                    f"{sum(bare_fits):.1f} s"
                    if search_fits
                    else ""
                )
                print(
                    f"[{mode}] run {repeat}: {len(trials)} trials x {args.epochs} "
                    f"epochs: search {search_wall:.1f} s wall / {search_cpu:.1f} s "
                    f"CPU (first trial to result), bare fits {bare_wall:.1f} s wall / "
                    f"{bare_cpu:.1f} s CPU; wall ratio {ratios[-1]:.2f}, CPU ratio "
                    f"{search_cpu / bare_cpu:.2f}; {extra_ms[-1]:.0f} ms more per "
                    f"trial{fits}"
                )
            print(
                f"[{mode}] median wall ratio of {len(ratios)} runs: "
                f"{statistics.median(ratios):.2f} (target <= 1.10); all: "
                f"{', '.join(f'{r:.2f}' for r in ratios)}; median extra per trial "
                f"{statistics.median(extra_ms):.0f} ms"
            )

        for workers in (False, True):
            mode = "worker processes" if workers else "flow process"
            spec = make_spec(store, args.memory_trials, 1, workers, continuous=True)
            _, _, trials, rss = run_search(spec, record_memory=True)
            growth = rss[-1] - rss[MEMORY_FROM_TRIAL - 1]
            print(
                f"[{mode}] resident memory after trial {MEMORY_FROM_TRIAL}: "
                f"{rss[MEMORY_FROM_TRIAL - 1]:.0f} MB, after trial {len(rss)}: "
                f"{rss[-1]:.0f} MB, growth {growth:.0f} MB (target < 100 MB)"
            )


if __name__ == "__main__":
    main()
