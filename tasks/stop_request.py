"""A process-wide request to stop the search, which `tuneflow tune` sets at Ctrl-C.

`request_stop()` sets it. The trial loop then submits no more trials, and each
trial that trains in this process stops at its next batch (see
`tasks.interrupted_runs.StopOnRequest`). A trial worker process gets the
request as a SIGINT, which `stop_on_sigint` turns into the same request there.
A trial on a Dask worker gets it through a `distributed.Event` that
`stop_requested` polls inside `also_stopping_when` (see `tasks.dask_stop`).

This module imports only the standard library, so a worker process can set
up its SIGINT handler before it imports Keras.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from types import FrameType
from typing import Any

_stop = threading.Event()
# The check for a stop requested outside this process, which
# `stop_requested` calls inside `also_stopping_when`.
_outside_stop_check: ContextVar[Callable[[], bool] | None] = ContextVar(
    "tuneflow_outside_stop_check", default=None
)


class SearchInterruptedError(RuntimeError):
    """Error for a search or trial that stopped because a stop was requested.

    `trials` contains the result of every trial that finished before the
    search stopped, and `stopped_trials` the numbers of the trials that were
    stopped while they ran.
    """

    def __init__(
        self,
        message: str,
        trials: list[Any] | None = None,
        stopped_trials: list[int] | None = None,
    ) -> None:
        super().__init__(message)
        self.trials = list(trials or [])
        self.stopped_trials = list(stopped_trials or [])

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.trials, self.stopped_trials))


def request_stop() -> None:
    """Ask the searches running in this process to stop. Safe in a signal handler."""
    _stop.set()


def stop_requested() -> bool:
    """Return whether a stop was requested.

    Inside `also_stopping_when`, a request that its check finds counts too.
    """
    if _stop.is_set():
        return True
    check = _outside_stop_check.get()
    return check is not None and check()


@contextlib.contextmanager
def also_stopping_when(check: Callable[[], bool]) -> Iterator[None]:
    """Make `stop_requested()` inside the block also return True when `check()` does.

    Training calls `stop_requested()` before every batch, so `check` must
    be cheap, and must cache the result of any remote read it makes.
    """
    token = _outside_stop_check.set(check)
    try:
        yield
    finally:
        _outside_stop_check.reset(token)


def clear_stop_request() -> None:
    """Forget an earlier request, so that the next search in this process runs."""
    _stop.clear()


def stop_on_sigint() -> None:
    """Make SIGINT request a stop in this process instead of raising KeyboardInterrupt.

    Call it from the main thread of a trial worker process. The terminal's
    Ctrl-C reaches every process in its process group, so the worker then ends
    its trial's run the way the flow's process does, instead of failing it.
    """
    signal.signal(signal.SIGINT, _request_stop_on_signal)


def _request_stop_on_signal(signum: int, frame: FrameType | None) -> None:
    request_stop()


def interrupt_worker_processes() -> list[int]:
    """Send SIGINT to this process's `multiprocessing` children; return their ids.

    A Ctrl-C in a terminal reaches them already. A SIGINT sent to this
    process alone (`kill -INT`) does not, so this passes it on.
    """
    interrupted = []
    for process in multiprocessing.active_children():
        if process.pid is None:
            continue
        try:
            os.kill(process.pid, signal.SIGINT)
        except ProcessLookupError:
            continue
        interrupted.append(process.pid)
    return interrupted
