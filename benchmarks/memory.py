"""Measure the resident memory of the worker process that ran each trial.

Runs 50 one-epoch trials of the digits search through the Prefect flow with
full MLflow tracking, one at a time in worker processes. It runs them twice:
with the default worker replacement (each worker process runs at most 20
trials), and with replacement off (one worker process runs every trial). For each trial
it reports the resident memory of the process that ran it, and prints the
values after trial 5 and after trial 50 against the target: within 50 MB.

The product's trial results do not name the process that ran a trial, so the
spec's hypermodel is `benchmarks/_memory_probe.py`: the digits build function
plus a `fit` that records the process id after each trial's training. When
the flow reports the trial finished, this script reads that process's
resident memory with psutil. At concurrency 1 that worker runs no other trial
then, though it may still be storing the trial's model in the background. The
probe's own reading, taken inside the trial right after training, is printed
beside it.

Each trial samples its learning rate from a continuous range, so 50 trials
never exhaust the search space and the learning rate identifies the trial.

Run:  .venv/bin/python benchmarks/memory.py [--trials 50]
      .venv/bin/python benchmarks/memory.py --quick   # 8 trials, replaced every 3
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import BENCHMARKS_DIR, digits_spec
from _memory_probe import PROBE_FILE_VARIABLE
from _pipeline import empty_flow

import psutil  # noqa: E402
from flows.events import SearchListener, listening  # noqa: E402
from flows.tuning import tune_spec_flow  # noqa: E402
from tasks.results import TrialResult  # noqa: E402
from tasks.spec import TuningSpec  # noqa: E402
from tasks.workers import DEFAULT_MAX_TRIALS_PER_WORKER  # noqa: E402

NUM_TRIALS = 50
FROM_TRIAL = 5
TARGET_GROWTH_MB = 50
NO_REPLACEMENT = 1000
LEARNING_RATE_RANGE = {
    "name": "learning_rate",
    "type": "Float",
    "min_value": 1e-4,
    "max_value": 1e-2,
    "sampling": "log",
}


@dataclass
class TrialMemory:
    """The process that ran one trial and its resident memory, in MB."""

    number: int
    pid: int
    rss_mb_after_fit: float
    rss_mb_after_trial: float


class WorkerMemory(SearchListener):
    """Reads the resident memory of the worker that ran each trial, as it finishes."""

    def __init__(self, probe_file: Path) -> None:
        self.probe_file = probe_file
        self.trials: list[TrialMemory] = []

    def trial_finished(self, result: TrialResult) -> None:
        record = self._probe_record(result["hyperparameters"]["learning_rate"])
        if record is None:
            print(f"NOTE: trial {result['number']} left no probe record; skipped.")
            return

        try:
            rss_mb = psutil.Process(record["pid"]).memory_info().rss / 2**20
        except psutil.NoSuchProcess:
            rss_mb = float("nan")
        self.trials.append(
            TrialMemory(result["number"], record["pid"], record["rss_mb"], rss_mb)
        )

    def _probe_record(self, learning_rate: float) -> dict[str, Any] | None:
        lines = self.probe_file.read_text(encoding="utf-8").splitlines()
        for line in reversed(lines):
            record = json.loads(line)
            if record["learning_rate"] == learning_rate:
                return record
        return None


def memory_spec(store: Path, num_trials: int, max_trials_per_worker: int) -> TuningSpec:
    return digits_spec(
        store,
        f"memory-{max_trials_per_worker}-per-worker",
        epochs=1,
        base_dir=BENCHMARKS_DIR,
        hypermodel="_memory_probe:DigitsProbe",
        max_trials=num_trials,
        worker_processes=True,
        max_trials_per_worker=max_trials_per_worker,
        hyperparameters=[LEARNING_RATE_RANGE],
    )


def measure(spec: TuningSpec, store: Path) -> list[TrialMemory]:
    """Run the search and return each trial's worker memory, by trial number."""
    probe_file = store / f"probe-{spec.mlflow.experiment}.jsonl"
    probe_file.touch()
    os.environ[PROBE_FILE_VARIABLE] = str(probe_file)
    listener = WorkerMemory(probe_file)
    with listening(listener):
        tune_spec_flow(spec)
    return sorted(listener.trials, key=lambda trial: trial.number)


def report(
    label: str, trials: list[TrialMemory], from_trial: int, num_trials: int
) -> None:
    """Print the memory after selected trials and the growth against the target."""
    first_run_by: dict[int, int] = {}
    for trial in trials:
        first_run_by.setdefault(trial.pid, trial.number)
    print(f"[{label}] trial, worker pid, trials that worker had run, RSS after the")
    print(f"[{label}] trial (read by pid), RSS right after fit (read inside the trial)")
    for trial in trials:
        position = trial.number + 1
        if position in (1, from_trial, num_trials) or position % 10 == 0:
            runs = trial.number - first_run_by[trial.pid] + 1
            print(
                f"[{label}]   trial {position:>3}  pid {trial.pid:>7}  "
                f"{runs:>3} trials  {trial.rss_mb_after_trial:7.0f} MB  "
                f"{trial.rss_mb_after_fit:7.0f} MB"
            )

    by_number = {trial.number: trial for trial in trials}
    start, end = by_number.get(from_trial - 1), by_number.get(num_trials - 1)
    if start is None or end is None:
        print(f"[{label}] trial {from_trial} or trial {num_trials} was not measured.")
        return
    growth = end.rss_mb_after_trial - start.rss_mb_after_trial
    verdict = "met" if abs(growth) <= TARGET_GROWTH_MB else "NOT met"
    print(
        f"[{label}] worker RSS after trial {from_trial}: "
        f"{start.rss_mb_after_trial:.0f} MB (pid {start.pid}), after trial "
        f"{num_trials}: {end.rss_mb_after_trial:.0f} MB "
        f"(pid {end.pid}); growth {growth:+.0f} MB (target: within "
        f"{TARGET_GROWTH_MB} MB, {verdict})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trials", type=int, default=NUM_TRIALS, help="trials per search"
    )
    parser.add_argument(
        "--from-trial",
        type=int,
        default=FROM_TRIAL,
        help="the trial growth is counted from",
    )
    parser.add_argument(
        "--max-trials-per-worker",
        type=int,
        default=DEFAULT_MAX_TRIALS_PER_WORKER,
        help="trials each worker process runs in the run with replacement",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="8 trials, workers replaced every 3 trials, to check the script",
    )
    args = parser.parse_args()
    if args.quick:
        args.trials, args.max_trials_per_worker = 8, 3
    if not 1 <= args.from_trial < args.trials:
        parser.error(
            f"--from-trial must be between 1 and --trials - 1 ({args.trials - 1}), "
            f"but got {args.from_trial}."
        )

    started = time.perf_counter()
    empty_flow()
    print(f"Prefect start-up (first flow call): {time.perf_counter() - started:.1f} s")
    print(
        f"Search: {args.trials} trials x 1 epoch, one at a time in worker processes, "
        "learning rate log-uniform in [1e-4, 1e-2]."
    )

    settings = (
        (
            f"replaced every {args.max_trials_per_worker} trials",
            args.max_trials_per_worker,
        ),
        ("replacement off", max(NO_REPLACEMENT, args.trials)),
    )
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder)
        for label, max_trials_per_worker in settings:
            started = time.perf_counter()
            spec = memory_spec(store, args.trials, max_trials_per_worker)
            trials = measure(spec, store)
            if len(trials) != args.trials:
                print(f"NOTE: {len(trials)} of {args.trials} trials were measured.")
            report(label, trials, args.from_trial, args.trials)
            print(f"[{label}] search took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
