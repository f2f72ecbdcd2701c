"""Worker processes that run trials, replaced after a fixed number of trials.

TensorFlow keeps growing a process's memory by a few MB per model built, even
after `keras.backend.clear_session()`. Running trials in spawned worker
processes that are replaced every `max_trials_per_worker` trials bounds that
growth, and keeps one trial's Keras global state away from the next.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_MAX_TRIALS_PER_WORKER = 10


def _prepare_worker() -> None:
    """Import the heavy libraries once per worker, before its first trial."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras  # noqa: F401
    import mlflow  # noqa: F401


def _worker_pid() -> int:
    return os.getpid()


class TrialWorkers:
    """A pool of spawned processes for trials, each replaced after some trials.

    Args:
        max_workers: Trials that run at once.
        max_trials_per_worker: Trials a process runs before it is replaced.
            None keeps each process for the whole search. Python 3.10 cannot
            replace processes, so there the value is ignored with a warning.
    """

    def __init__(
        self,
        max_workers: int = 1,
        max_trials_per_worker: int | None = DEFAULT_MAX_TRIALS_PER_WORKER,
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
        options: dict[str, Any] = {}
        if max_trials_per_worker is not None:
            if sys.version_info >= (3, 11):
                options["max_tasks_per_child"] = max_trials_per_worker
            else:
                logger.warning(
                    "Python %s cannot replace worker processes; memory grows with "
                    "the number of trials.",
                    sys.version.split()[0],
                )
        self.max_workers = max_workers
        self._executor = ProcessPoolExecutor(
            max_workers=max_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_prepare_worker,
            **options,
        )

    def warm_up(self) -> float:
        """Start every worker and import the libraries; return the seconds spent."""
        started = time.perf_counter()
        futures = [self._executor.submit(_worker_pid) for _ in range(self.max_workers)]
        for future in futures:
            future.result()
        return time.perf_counter() - started

    def submit(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        return self._executor.submit(function, *args, **kwargs)

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> TrialWorkers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
