"""Helpers shared by the benchmark scripts that run searches through the flow."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator
from typing import Any

import psutil

import _common  # noqa: F401 - sets the environment before Prefect is imported
from _common import tree_cpu_seconds, tree_rss_mb
from prefect import flow

from flows.events import SearchListener, listening
from flows.local_prefect import local_mode_settings
from flows.tuning import tune_spec_flow
from tasks.results import TrialResult
from tasks.spec import TuningSpec
from tasks.workers import TrialWorkers


class Clock(SearchListener):
    """Records when the first trial starts and, if asked, the memory after each trial.

    Reading the memory of the process tree takes about 0.7 ms per trial
    (psutil, 2 CPU cores) inside the search's timing, so timed searches
    leave it out.
    """

    def __init__(self, record_memory: bool) -> None:
        self.first_trial_at: float | None = None
        self.first_trial_cpu: float | None = None
        self.record_memory = record_memory
        self.rss_mb: list[float] = []

    def trial_started(self, number: int, values: dict[str, Any]) -> None:
        if self.first_trial_at is None:
            self.first_trial_at = time.perf_counter()
            self.first_trial_cpu = tree_cpu_seconds()

    def trial_finished(self, result: TrialResult) -> None:
        if self.record_memory:
            self.rss_mb.append(tree_rss_mb())


def run_search(
    spec: TuningSpec, record_memory: bool = False
) -> tuple[float, float, list[TrialResult], list[float]]:
    """Run the search; return its wall and CPU seconds from the first trial on.

    With `record_memory`, the last item is the resident memory of this
    process and its children after each trial, in MB; otherwise it is empty.

    The search runs with the Prefect settings of `tuneflow tune`. When it
    returns, its worker processes may still be exiting; this waits for them,
    outside the timing, so that they take no CPU from what runs next.
    """
    clock = Clock(record_memory)
    # Both sides start without garbage left by what ran before (see run_bare).
    gc.collect()
    with listening(clock), local_mode_settings():
        result = tune_spec_flow(spec)
    finished_at = time.perf_counter()
    finished_cpu = tree_cpu_seconds()
    assert clock.first_trial_at is not None and clock.first_trial_cpu is not None
    wall = finished_at - clock.first_trial_at
    wait_for_worker_exit()
    return wall, finished_cpu - clock.first_trial_cpu, result.trials, clock.rss_mb


def wait_for_worker_exit(timeout: float = 60.0) -> None:
    """Wait until this process's spawned worker processes have exited."""
    children = [
        child
        for child in psutil.Process().children()
        if any("spawn_main" in part for part in _cmdline(child))
    ]
    _, alive = psutil.wait_procs(children, timeout=timeout)
    if alive:
        raise RuntimeError(f"Worker processes still alive after {timeout} s: {alive}")


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.NoSuchProcess:
        return []


@flow(name="prefect-start-up")
def empty_flow() -> None:
    """Do nothing, so that timing it measures Prefect's start-up alone."""


@contextlib.contextmanager
def recording_worker_start_up() -> Iterator[list[float]]:
    """Collect the seconds each `TrialWorkers.warm_up` call took inside this block.

    The flow waits for its first worker pool in `warm_up` before the first
    trial starts, and logs the time at INFO level only. Wrapping the method
    reads the same number without changing what it does.
    """
    seconds: list[float] = []
    original = TrialWorkers.warm_up

    def timed_warm_up(self: TrialWorkers) -> float:
        result = original(self)
        seconds.append(result)
        return result

    TrialWorkers.warm_up = timed_warm_up  # type: ignore[method-assign]
    try:
        yield seconds
    finally:
        TrialWorkers.warm_up = original  # type: ignore[method-assign]
