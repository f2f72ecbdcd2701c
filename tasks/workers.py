"""Worker processes that run trials, replaced after a fixed number of trials.

TensorFlow keeps growing a process's memory by a few MB per model built, even
after `keras.backend.clear_session()`. Running trials in spawned worker
processes that are replaced every `max_trials_per_worker` trials bounds that
growth, and keeps one trial's Keras global state away from the next.

Each concurrent trial has a slot, and each slot runs its trials in a process of
its own (a one-process `ProcessPoolExecutor`), so stopping one slot's process
leaves the other trials running. A replacement process takes seconds to import
TensorFlow, so a slot starts its next process in the background while the
current one runs its last trial. A slot may be pinned to one GPU: each of its
processes sets CUDA_VISIBLE_DEVICES to that GPU's id before importing anything.

With a `trial_timeout_seconds`, a call still running `stop_grace_seconds` past
that limit has its process killed, and its future raises `WorkerTimeoutError`.
That is the last resort behind the deadline that training checks after every
batch (`tuner_core.TrialDeadline`), for a single step that hangs. The limit
counts from the call's start, and again from `report_call_start()`, which a
trial calls when its own deadline starts. The slot starts a new process for
its next call.
"""

from __future__ import annotations

import importlib
import itertools
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_for_futures
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from tasks.gpus import CUDA_VISIBLE_DEVICES, assign_gpus
from tasks.stop_request import stop_on_sigint

logger = logging.getLogger(__name__)

DEFAULT_MAX_TRIALS_PER_WORKER = 20
# Seconds past the time limit before a call's process is killed. Training
# checks its deadline after every batch, so it normally stops well within this.
DEFAULT_STOP_GRACE_SECONDS = 10.0
# How often the watchdog thread compares running calls with the time limit.
WATCHDOG_INTERVAL_SECONDS = 0.25
DEFAULT_PRELOAD_MODULES = ("keras", "mlflow")
# SIGKILL ends even a process stuck in native code. Windows has no SIGKILL.
_KILL_SIGNAL = getattr(signal, "SIGKILL", signal.SIGTERM)

Preparation = tuple[Callable[..., Any], tuple[Any, ...]]

# In a worker process: the pipe end that reports each call's start, or None,
# and the token of the call that runs now.
_start_reports: Connection | None = None
_current_call: int | None = None


class WorkerTimeoutError(TimeoutError):
    """Error for a call whose worker process was killed at the hard time limit.

    `elapsed_seconds` is the time from the last start report to the kill.
    """

    def __init__(self, message: str, *, pid: int, elapsed_seconds: float) -> None:
        super().__init__(message)
        self.pid = pid
        self.elapsed_seconds = elapsed_seconds

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_worker_timeout, (str(self), self.pid, self.elapsed_seconds))


def _rebuild_worker_timeout(
    message: str, pid: int, elapsed_seconds: float
) -> WorkerTimeoutError:
    return WorkerTimeoutError(message, pid=pid, elapsed_seconds=elapsed_seconds)


def _start_worker(
    cuda_visible_devices: str | None,
    start_reports: Connection | None,
    preload_modules: tuple[str, ...],
    cpu_threads: int,
) -> None:
    """Pin the worker to its GPU, then import the heavy libraries once.

    A SIGINT then requests a stop in the worker, so that its trial stops and
    ends its run KILLED, instead of failing with KeyboardInterrupt.
    """
    global _start_reports
    stop_on_sigint()
    if cuda_visible_devices is not None:
        os.environ[CUDA_VISIBLE_DEVICES] = cuda_visible_devices
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Concurrent workers share the cores: TensorFlow's default of one op
    # thread per core in every worker oversubscribes them.
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(cpu_threads))
    _start_reports = start_reports
    for name in preload_modules:
        importlib.import_module(name)


def _run_preparation(preparation: Preparation | None) -> int:
    if preparation is not None:
        function, args = preparation
        function(*args)
    return os.getpid()


def _call_with_start_report(
    token: int,
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Tell the parent which process starts call `token`, then run it."""
    global _current_call
    _current_call = token
    try:
        report_call_start()
        return function(*args, **kwargs)
    finally:
        _current_call = None


def report_call_start() -> None:
    """Restart the time limit of the call that runs in this worker process.

    The limit first counts from the call's start. A trial calls this when its
    own deadline starts, after loading its inputs and creating its MLflow run,
    so that the kill comes `stop_grace_seconds` after the trial's own limit.
    Outside a worker process with a time limit, it does nothing.
    """
    if _start_reports is not None and _current_call is not None:
        _start_reports.send((_current_call, os.getpid()))


@dataclass
class _Slot:
    """One concurrent trial's worker process, and the process that replaces it."""

    index: int
    gpu: str | None
    pool: ProcessPoolExecutor | None = None
    next_pool: ProcessPoolExecutor | None = None
    num_calls: int = 0
    num_running: int = 0
    broken: bool = False


@dataclass(eq=False)
class _Call:
    """A submitted call: the slot and pool that run it, and its time limit's start.

    `started` is the monotonic time of the last start report, None before the
    first.
    """

    token: int
    slot: _Slot
    pool: ProcessPoolExecutor
    future: Future[Any] = field(default_factory=Future)
    pid: int | None = None
    started: float | None = None
    killed_at: float | None = None


class TrialWorkers:
    """Spawned processes for trials, one slot per concurrent trial.

    Args:
        max_workers: Trials that run at once.
        max_trials_per_worker: Trials each process runs before a new one takes
            over its slot. None keeps each process for the whole search.
        preparation: A picklable `(function, args)` each process runs before
            its first trial, such as loading the data set.
        expected_trials: The maximum number of trials the search submits. Known, it
            keeps a replacement process from starting when no trial is left for it.
        gpu_ids: GPU ids (CUDA_VISIBLE_DEVICES entries), at least one per
            worker. Slot i runs on `gpu_ids[i]` alone. None or empty leaves
            CUDA_VISIBLE_DEVICES as the parent has it.
        trial_timeout_seconds: The time limit of each call. None for no limit.
        stop_grace_seconds: Seconds past the limit before the call's process
            is killed. Defaults to DEFAULT_STOP_GRACE_SECONDS.
        preload_modules: Modules each process imports when it starts.
        wait_for_exit: Whether shutdown waits for the processes to exit. With
            False it returns once every submitted call has ended, and the
            processes exit on their own.

    Raises:
        ValueError: a count is below 1, or there are fewer GPU ids than workers.
    """

    def __init__(
        self,
        max_workers: int = 1,
        max_trials_per_worker: int | None = DEFAULT_MAX_TRIALS_PER_WORKER,
        preparation: Preparation | None = None,
        expected_trials: int | None = None,
        *,
        gpu_ids: Sequence[str] | None = None,
        trial_timeout_seconds: float | None = None,
        stop_grace_seconds: float | None = None,
        preload_modules: Sequence[str] = DEFAULT_PRELOAD_MODULES,
        wait_for_exit: bool = True,
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
        gpus = assign_gpus(list(gpu_ids or []), max_workers)

        self.max_workers = max_workers
        self.max_trials_per_worker = max_trials_per_worker
        self.trial_timeout_seconds = trial_timeout_seconds
        self.stop_grace_seconds = (
            DEFAULT_STOP_GRACE_SECONDS
            if stop_grace_seconds is None
            else stop_grace_seconds
        )
        self._preparation = preparation
        self._wait_for_exit = wait_for_exit
        self._expected_trials = expected_trials
        self._preload_modules = tuple(preload_modules)
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.RLock()
        self._tokens = itertools.count()
        self._calls: dict[int, _Call] = {}
        self._submitted = 0
        self._retired: list[ProcessPoolExecutor] = []

        self._reports: Connection | None = None
        self._report_writer: Connection | None = None
        self._watchdog: threading.Thread | None = None
        self._stopping = threading.Event()
        if trial_timeout_seconds is not None:
            self._reports, self._report_writer = self._context.Pipe(duplex=False)
            self._watchdog = threading.Thread(
                target=self._watch, name="tuneflow-trial-watchdog", daemon=True
            )
            self._watchdog.start()

        self._slots = [_Slot(index, gpu) for index, gpu in enumerate(gpus)]
        for slot in self._slots:
            slot.pool = self._start_pool(slot)

    @property
    def gpus(self) -> list[str | None]:
        """The GPU id of each slot, None where the slot is not pinned."""
        return [slot.gpu for slot in self._slots]

    def _start_pool(self, slot: _Slot) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=self._context,
            initializer=_start_worker,
            initargs=(
                slot.gpu,
                self._report_writer,
                self._preload_modules,
                max(1, (os.cpu_count() or 1) // self.max_workers),
            ),
        )
        pool.submit(_run_preparation, self._preparation)
        return pool

    def warm_up(self) -> float:
        """Wait until every slot's first process is ready, and return the seconds."""
        started = time.perf_counter()
        futures = [
            slot.pool.submit(_run_preparation, None)
            for slot in self._slots
            if slot.pool is not None
        ]
        for future in futures:
            future.result()
        return time.perf_counter() - started

    def submit(
        self, function: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Future[Any]:
        """Run `function` in an idle slot's process, replacing a used-up one first."""
        with self._lock:
            slot = min(self._slots, key=lambda s: (s.num_running > 0, s.num_running))
            pool = self._pool_for_next_call(slot)
            call = _Call(next(self._tokens), slot, pool)
            call.future.set_running_or_notify_cancel()
            self._calls[call.token] = call
            inner = pool.submit(
                _call_with_start_report, call.token, function, args, kwargs
            )
            slot.num_calls += 1
            slot.num_running += 1
            self._submitted += 1
            if self._needs_next_pool(slot):
                logger.info(
                    "Starting the next process of worker slot %d after %d trials.",
                    slot.index,
                    self._submitted,
                )
                slot.next_pool = self._start_pool(slot)
        inner.add_done_callback(lambda done: self._finish(call, done))
        return call.future

    def _pool_for_next_call(self, slot: _Slot) -> ProcessPoolExecutor:
        """Return the slot's process, first replacing one used up or broken."""
        capacity = self.max_trials_per_worker
        used_up = capacity is not None and slot.num_calls >= capacity
        if slot.pool is not None and not slot.broken and not used_up:
            return slot.pool

        if slot.pool is not None:
            # A retired process finishes its running call, then exits.
            slot.pool.shutdown(wait=False)
            self._retired.append(slot.pool)
        if slot.next_pool is None:
            slot.next_pool = self._start_pool(slot)
        slot.pool = slot.next_pool
        slot.next_pool = None
        slot.num_calls = 0
        slot.broken = False
        return slot.pool

    def _needs_next_pool(self, slot: _Slot) -> bool:
        """Return whether to start the slot's next process now, one trial early."""
        capacity = self.max_trials_per_worker
        if capacity is None or slot.next_pool is not None:
            return False
        if slot.num_calls < capacity - 1:
            return False
        if self._expected_trials is None:
            return True
        return self._submitted < self._expected_trials

    def _finish(self, call: _Call, done: Future[Any]) -> None:
        """Pass a call's outcome on, as WorkerTimeoutError for a killed process."""
        with self._lock:
            self._calls.pop(call.token, None)
            call.slot.num_running -= 1
            if done.cancelled():
                call.future.set_exception(CancelledError())
                return
            error = done.exception()
            if isinstance(error, BrokenProcessPool) and call.slot.pool is call.pool:
                call.slot.broken = True
        if error is None:
            call.future.set_result(done.result())
            return
        if isinstance(error, BrokenProcessPool) and call.killed_at is not None:
            error = self._timeout_error(call)
        call.future.set_exception(error)

    def _timeout_error(self, call: _Call) -> WorkerTimeoutError:
        elapsed = (call.killed_at or 0.0) - (call.started or 0.0)
        return WorkerTimeoutError(
            f"The worker process {call.pid} was killed {elapsed:.1f} s after the "
            f"trial's time limit started counting, because it ran past the limit of "
            f"{self.trial_timeout_seconds:g} s plus a grace period of "
            f"{self.stop_grace_seconds:g} s.",
            pid=call.pid or 0,
            elapsed_seconds=elapsed,
        )

    # The watchdog.

    def _watch(self) -> None:
        """Record when calls start, and kill the process of a call past the limit."""
        assert self._reports is not None
        while not self._stopping.is_set():
            if wait([self._reports], timeout=WATCHDOG_INTERVAL_SECONDS):
                self._read_start_reports()
            self._kill_late_calls()

    def _read_start_reports(self) -> None:
        assert self._reports is not None
        while self._reports.poll():
            try:
                token, pid = self._reports.recv()
            except (EOFError, OSError):
                return
            with self._lock:
                call = self._calls.get(token)
                if call is not None:
                    call.pid = pid
                    call.started = time.monotonic()

    def _kill_late_calls(self) -> None:
        assert self.trial_timeout_seconds is not None
        limit = self.trial_timeout_seconds + self.stop_grace_seconds
        now = time.monotonic()
        with self._lock:
            late = [
                call
                for call in self._calls.values()
                if call.started is not None
                and call.pid is not None
                and call.killed_at is None
                and now - call.started > limit
            ]
            for call in late:
                call.killed_at = now
        for call in late:
            logger.warning(
                "Killing worker process %s of slot %d: its trial ran %.1f s, past the "
                "time limit of %g s plus %g s of grace.",
                call.pid,
                call.slot.index,
                now - call.started,
                self.trial_timeout_seconds,
                self.stop_grace_seconds,
            )
            try:
                os.kill(call.pid, _KILL_SIGNAL)
            except ProcessLookupError:
                logger.info("Worker process %s had already exited.", call.pid)

    # Stopping.

    def shutdown(self) -> None:
        """Wait for running trials, and stop replacement processes that ran none."""
        for slot in self._slots:
            if slot.next_pool is not None:
                slot.next_pool.shutdown(wait=False, cancel_futures=True)
                _terminate_idle_processes(slot.next_pool)
        if not self._wait_for_exit:
            with self._lock:
                running = [call.future for call in self._calls.values()]
            wait_for_futures(running)
        for slot in self._slots:
            if slot.pool is not None:
                # A process takes seconds to exit once TensorFlow is loaded.
                slot.pool.shutdown(wait=self._wait_for_exit, cancel_futures=True)
        for pool in self._retired:
            pool.shutdown(wait=True)

        self._stopping.set()
        if self._watchdog is not None:
            self._watchdog.join()
        for connection in (self._reports, self._report_writer):
            if connection is not None:
                connection.close()

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
