"""The trial loop of the tuning flow: the oracle hands out trials, tasks run them."""

from __future__ import annotations

import queue
from collections.abc import Callable
from typing import Any, NoReturn

from prefect import get_run_logger
from prefect.futures import PrefectFuture, wait
from prefect.task_runners import TaskRunner
from prefect.utilities.callables import get_call_parameters

from flows.events import notify
from tasks.data import DataRef
from tasks.project import SearchProject, unfinished_trials
from tasks.results import TrialResult
from tasks.spec import TuningSpec
from tasks.stop_request import SearchInterruptedError, stop_requested
from tasks.trial import TrialError, run_trial
from tasks.trial_plan import plan_trial
from tuner_core import Oracle, Trial, TrialStatus

TUNER_ID = "tuneflow"
# How often the flow's main thread wakes up while it waits for a trial. Python
# runs signal handlers in the main thread only, and a thread blocked on a lock
# runs none until it wakes, so a Ctrl-C that the OS delivers to another thread
# would otherwise wait until a trial finishes. At each wake-up, the loop also
# passes a stop request on through `stop_trials`.
WAKE_UP_SECONDS = 0.25


class SearchFailedError(RuntimeError):
    """Error for a search that failed trials stopped, raised after its runs ended.

    `trials` contains the result of every trial that finished before the
    search stopped, completed and failed ones alike. `summary` gives the
    reason the search stopped without the trials' errors, for a caller that
    has shown each failed trial already. It defaults to the message.
    """

    def __init__(
        self,
        message: str,
        trials: list[TrialResult] | None = None,
        summary: str | None = None,
    ) -> None:
        super().__init__(message)
        self.trials = list(trials or [])
        self.summary = summary or message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (str(self), self.trials, self.summary))


class TrialLoop:
    """Runs an oracle's trials as Prefect tasks, at most `spec.concurrency` at a time.

    A resumed search passes its finished trials in `finished`, by trial id,
    and the oracle's trials still RUNNING run first, once more each. With a
    `project`, the search is saved as each trial starts and ends. With a
    `task_runner`, such as a `DaskTaskRunner`, the trial tasks run there
    instead of in the flow's own task runner. At a stop request, the loop
    calls `stop_trials` once, to pass the request on to trials that run where
    this process's request does not reach, such as on Dask workers.
    """

    def __init__(
        self,
        oracle: Oracle,
        spec: TuningSpec,
        data_ref: DataRef,
        parent_run_id: str,
        tracking_uri: str,
        *,
        project: SearchProject | None = None,
        finished: dict[str, TrialResult] | None = None,
        task_runner: TaskRunner[PrefectFuture[Any]] | None = None,
        stop_trials: Callable[[], None] | None = None,
    ) -> None:
        self.oracle = oracle
        self.spec = spec
        self.data_ref = data_ref
        self.parent_run_id = parent_run_id
        self.tracking_uri = tracking_uri
        self.project = project
        self.results: dict[str, TrialResult] = dict(finished or {})
        self.interrupted = unfinished_trials(oracle)
        self.running: dict[PrefectFuture[TrialResult], Trial] = {}
        self.failures: list[TrialResult] = []
        self.stopped_trials: list[int] = []
        self.finished_futures: queue.SimpleQueue[PrefectFuture[TrialResult]] = (
            queue.SimpleQueue()
        )
        self.task = run_trial.with_options(retries=spec.max_retries_per_trial)
        self.task_runner = task_runner
        self.stop_trials = stop_trials
        self.stop_passed_on = False

    def run(self) -> tuple[list[TrialResult], str | None]:
        """Run trials until the oracle stops, and return every result and the reason.

        Raises:
            SearchFailedError: a trial failed in a way every trial would, or
                `oracle.max_consecutive_failed_trials` trials failed in a row.
            SearchInterruptedError: a stop was requested (`tasks.stop_request`).
        """
        self.save()
        stop_message = None
        while True:
            stop_message = self._submit_trials()
            if stop_requested():
                self._stop_at_request()
            if not self.running:
                break
            self._finish(self._next_finished())

        get_run_logger().info("The oracle stopped the search: %s.", stop_message)
        return self.sorted_results(), stop_message

    def sorted_results(self) -> list[TrialResult]:
        return sorted(self.results.values(), key=lambda result: result["number"])

    def save(self) -> None:
        if self.project is not None:
            self.project.save(
                self.oracle,
                self.results,
                self.parent_run_id,
                self.data_ref,
                self.spec,
            )

    def _submit_trials(self) -> str | None:
        """Submit trials until `spec.concurrency` run, and return a reason to stop.

        The oracle may stop only until running trials finish (Hyperband waits
        for a round), so the loop requests a trial again after each trial ends.
        """
        while len(self.running) < self.spec.concurrency and not stop_requested():
            trial = self._next_trial()
            if trial.status == TrialStatus.STOPPED:
                return trial.message
            self._submit(trial)
        return None

    def _next_trial(self) -> Trial:
        """Return a trial interrupted by a stop, else the oracle's next trial."""
        logger = get_run_logger()
        max_trials = self.oracle.max_trials
        while self.interrupted:
            trial = self.interrupted.pop(0)
            if max_trials is not None and trial.number >= max_trials:
                logger.info(
                    "Dropping interrupted trial %d, because max_trials=%d leaves no "
                    "room for it.",
                    trial.number,
                    max_trials,
                )
                del self.oracle.trials[trial.trial_id]
                continue
            logger.info(
                "Running trial %d again, because the search stopped while it ran.",
                trial.number,
            )
            return trial
        return self.oracle.create_trial(TUNER_ID)

    def _submit(self, trial: Trial) -> None:
        plan = plan_trial(trial, self.results)
        self.save()
        values = trial.hyperparameters.values
        arguments = (
            trial.number,
            values,
            self.data_ref,
            self.spec,
            self.parent_run_id,
            self.tracking_uri,
            plan,
        )
        if self.task_runner is None:
            future = self.task.submit(*arguments)
        else:
            parameters = get_call_parameters(self.task.fn, arguments, {})
            future = self.task_runner.submit(self.task, parameters)
        self.running[future] = trial
        future.add_done_callback(self.finished_futures.put)
        notify("trial_started", trial.number, values)

    def _next_finished(self) -> PrefectFuture[TrialResult]:
        """Wait for a running trial's future to finish, and return it.

        A stop request while it waits is passed on to the running trials.
        """
        while True:
            try:
                return self.finished_futures.get(timeout=WAKE_UP_SECONDS)
            except queue.Empty:
                if stop_requested():
                    self._pass_stop_on()

    def _pass_stop_on(self) -> None:
        """Call `stop_trials` once, after the first stop request."""
        if self.stop_trials is None or self.stop_passed_on:
            return
        self.stop_passed_on = True
        self.stop_trials()

    def _finish(self, future: PrefectFuture[TrialResult]) -> None:
        trial = self.running.pop(future)
        try:
            result, failure = collect_trial(future, trial, self.oracle)
        except SearchInterruptedError:
            # The oracle keeps the trial RUNNING, so a resumed search runs it again.
            self.stopped_trials.append(trial.number)
            return
        self.results[trial.trial_id] = result
        self.save()
        notify("trial_finished", result)
        if failure is None:
            self.failures = []
            return

        self.failures.append(result)
        fatal = not isinstance(failure, TrialError) or failure.fatal
        limit = self.oracle.max_consecutive_failed_trials
        if not fatal and len(self.failures) < limit:
            return
        self._collect_running()
        if fatal:
            stopped = (
                f"The search stopped after trial {trial.number} failed "
                f"({len(self.failures)} failure(s) in a row)"
            )
            message = f"{stopped}: {failure}"
            summary = f"{stopped}."
            if isinstance(failure, TrialError):
                summary = f"{stopped}, as every later trial would fail the same way."
        else:
            message = consecutive_failure_message(self.failures, limit)
            summary = consecutive_failure_summary(self.failures, limit)
        raise SearchFailedError(message, self.sorted_results(), summary) from failure

    def _collect_running(self) -> None:
        """Wait for the running trials and record them, before the search stops."""
        wait(list(self.running))
        for future, trial in list(self.running.items()):
            try:
                result, _ = collect_trial(future, trial, self.oracle)
            except SearchInterruptedError:
                self.stopped_trials.append(trial.number)
                continue
            self.results[trial.trial_id] = result
            notify("trial_finished", result)
        self.running.clear()
        self.save()

    def _stop_at_request(self) -> NoReturn:
        """Wait for the running trials to stop, keep those that finished, and raise."""
        self._pass_stop_on()
        while self.running:
            self._finish(self._next_finished())
        self.save()
        finished = self.sorted_results()
        stopped = ", ".join(str(n) for n in sorted(self.stopped_trials)) or "none"
        raise SearchInterruptedError(
            f"The user interrupted the search: {len(finished)} finished trial(s) "
            f"kept; trial numbers stopped while running: {stopped}.",
            finished,
            self.stopped_trials,
        )


def collect_trial(
    future: PrefectFuture[TrialResult], trial: Trial, oracle: Oracle
) -> tuple[TrialResult, BaseException | None]:
    """Report a finished trial to the oracle, returning its result and its error.

    Raises:
        SearchInterruptedError: a stop request stopped the trial. The trial
            is not reported to the oracle, so it stays RUNNING there.
    """
    try:
        result = future.result()
    except SearchInterruptedError:
        raise
    except Exception as error:
        oracle.end_trial(trial, TrialStatus.FAILED, message=str(error))
        failed = TrialResult(
            number=trial.number,
            status="FAILED",
            hyperparameters=dict(trial.hyperparameters.values),
            score=None,
            best_epoch=None,
            metrics={},
            run_id=getattr(error, "run_id", None),
            model_uri=None,
            message=str(error),
        )
        failure_reason = getattr(error, "failure_reason", None)
        if failure_reason is not None:
            failed["failure_reason"] = failure_reason
        return failed, error

    oracle.end_trial(
        trial,
        TrialStatus.COMPLETED,
        score=result["score"],
        best_step=result["best_epoch"],
        values=result["hyperparameters"],
    )
    return result, None


def consecutive_failure_summary(failures: list[TrialResult], limit: int) -> str:
    """Say that failed trials stopped the search, without their errors."""
    return (
        f"The search stopped after trial {failures[-1]['number']} failed "
        f"({len(failures)} failure(s) in a row, max_consecutive_failed_trials="
        f"{limit}). Completed trials stay in MLflow. Fix the failed trials' errors, "
        "or raise max_consecutive_failed_trials in the spec."
    )


def consecutive_failure_message(failures: list[TrialResult], limit: int) -> str:
    """Describe a search stopped by failed trials, listing their values and errors."""
    lines = [
        f"The search stopped after trial {failures[-1]['number']} failed "
        f"({len(failures)} failure(s) in a row, max_consecutive_failed_trials="
        f"{limit}). Completed trials stay in MLflow and in this error's `trials`. "
        "Fix the errors below, or raise max_consecutive_failed_trials in the spec. "
        "Failed trials:"
    ]
    for result in failures:
        lines.append(
            f"  trial {result['number']} with {result['hyperparameters']}: "
            f"{result['message']}"
        )
    return "\n".join(lines)
