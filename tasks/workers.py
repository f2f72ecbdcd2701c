"""Worker processes that run trials, replaced after a fixed number of trials.

TensorFlow keeps growing a process's memory by a few MB per model built, even
after `keras.backend.clear_session()`. Running trials in spawned worker
processes that are replaced every `max_trials_per_worker` trials bounds that
growth, and keeps one trial's Keras global state away from the next.

A replacement process takes seconds to import TensorFlow, so the next pool is
started in the background while the current one runs its last trials.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_MAX_TRIALS_PER_WORKER = 20

Preparation = tuple[Callable[..., Any], tuple[Any, ...]]


def _prepare_worker() -> None:
    """Import the heavy libraries once per worker, before its first trial."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras  # noqa: F401
    import mlflow  # noqa: F401


def _run_preparation(preparation: Preparation | None) -> int:
    if preparation is not None:
        function, args = preparation
        function(*args)
    return os.getpid()


class TrialWorkers:
    """Pools of spawned processes for trials; each pool runs a bounded number.

    Args:
        max_workers: Trials that run at once.
        max_trials_per_worker: Trials a pool runs per process before the next
            pool takes over. None keeps one pool for the whole search.
        preparation: A picklable `(function, args)` each process runs before
            its first trial, such as loading the data set.
        expected_trials: The maximum number of trials the search submits. Known, it
            keeps a replacement pool from starting when no trial is left for it.
    """

    def __init__(
        self,
        max_workers: int = 1,
        max_trials_per_worker: int | None = DEFAULT_MAX_TRIALS_PER_WORKER,
        preparation: Preparation | None = None,
        expected_trials: int | None = None,
    ) -> None:
        if max_workers < 1:
            raise ValueError(
                f"max_workers must be >= 1, but got max_workers={max_workers!r}."
            )
        if max_trials_per_worker is not None and max_trials_per_worker < 1:
            raise ValueError(
                "max_trials_per_worker must be >= 1 or None, but got "
                f"max_trials_per_worker={max_trials_per_worker!r}."
            )
        self.max_workers = max_workers
        self._pool_capacity = (
            None if max_trials_per_worker is None else max_trials_per_worker * max_workers
        )
        self._preparation = preparation
        self._expected_trials = expected_trials
        self._submitted = 0
        self._submitted_to_current = 0
        self._current = self._start_pool()
        self._next: ProcessPoolExecutor | None = None
        self._retired: list[ProcessPoolExecutor] = []

    def _start_pool(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            max_workers=self.max_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_prepare_worker,
        )
        for _ in range(self.max_workers):
            pool.submit(_run_preparation, self._preparation)
        return pool

    def warm_up(self) -> float:
        """Wait until every process of the first pool is ready; return the seconds."""
        started = time.perf_counter()
        futures = [
            self._current.submit(_run_preparation, None) for _ in range(self.max_workers)
        ]
        for future in futures:
            future.result()
        return time.perf_counter() - started

    def submit(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        """Run `function` in a worker process, switching pools when one is used up."""
        capacity = self._pool_capacity
        if capacity is not None and self._submitted_to_current >= capacity:
            self._switch_pool()
        future = self._current.submit(function, *args, **kwargs)
        self._submitted += 1
        self._submitted_to_current += 1
        if capacity is not None and self._next is None and self._needs_next_pool(capacity):
            logger.info("Starting the next worker pool after %d trials.", self._submitted)
            self._next = self._start_pool()
        return future

    def _needs_next_pool(self, capacity: int) -> bool:
        """Return whether to start the next pool now, a few trials before it is due."""
        if self._submitted_to_current < capacity - self.max_workers:
            return False
        if self._expected_trials is None:
            return True
        return self._submitted < self._expected_trials

    def _switch_pool(self) -> None:
        retiring = self._current
        self._current = self._next if self._next is not None else self._start_pool()
        self._next = None
        self._submitted_to_current = 0
        # The retired pool finishes its running trials, then its processes exit.
        retiring.shutdown(wait=False)
        self._retired.append(retiring)

    def shutdown(self) -> None:
        """Wait for running trials; stop a replacement pool that never ran one."""
        if self._next is not None:
            self._next.shutdown(wait=False, cancel_futures=True)
            _terminate_idle_processes(self._next)
        self._current.shutdown(wait=True, cancel_futures=True)
        for pool in self._retired:
            pool.shutdown(wait=True)

    def __enter__(self) -> TrialWorkers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()


def _terminate_idle_processes(pool: ProcessPoolExecutor) -> None:
    """Stop the processes of a pool that ran no trial, instead of waiting for them.

    A started process imports TensorFlow for seconds before it can exit.
    """
    # NOTE: ProcessPoolExecutor has no public way to stop its processes; this
    # reads its private `_processes` map (present in CPython 3.10 to 3.13).
    processes = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        if process.is_alive():
            process.terminate()
