"""The console of `tuneflow tune`: expected trial failures print no tracebacks."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient
from pipeline_runs import experiment_runs, split_runs
from pipeline_specs import write_tiny_spec
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterTextSearch

from flows.cli import EXIT_SEARCH_FAILED
from flows.console_logs import ExpectedFailureFilter
from flows.trial_loop import SearchFailedError
from tasks.expected_failures import clear_expected_failure, mark_expected_failure
from tasks.stop_request import SearchInterruptedError
from tasks.trial_execution import TimedOutTrialError, TrialError

REPOSITORY = Path(__file__).resolve().parents[2]
TESTS = REPOSITORY / "tests"

# Trial 0 trains, trial 1 fails, trial 2 times out, and trial 3 stops the search
# (see hypermodels.TrialOutcomesModel).
GRID_OF_OUTCOMES = """oracle = "grid"
tune_new_entries = false
trial_timeout_seconds = 10

[[hyperparameters]]
name = "units"
type = "Int"
min_value = 8
max_value = 32
step = 8
"""
TRACEBACK_HINT = "Run the command with --verbose to see the tracebacks"


def trial_error(number: int = 1) -> TrialError:
    return TrialError(
        f"Trial {number} failed (MLflow run abc): RuntimeError: diverged",
        trial_number=number,
        run_id="abc",
        error_type="RuntimeError",
        fatal=False,
    )


def caused_by(error: BaseException, cause: BaseException) -> BaseException:
    error.__cause__ = cause
    return error


def error_record(
    error: BaseException | None = None,
    args: tuple[object, ...] = (),
    task_run_id: str | None = None,
) -> logging.LogRecord:
    """Return an ERROR record with `error` as its exception, as Prefect logs one."""
    exc_info = None if error is None else (type(error), error, None)
    message = " ".join("%s" for _ in args) or "Task run failed"
    record = logging.LogRecord(
        "prefect.task_runs", logging.ERROR, __file__, 1, message, args, exc_info
    )
    if task_run_id is not None:
        record.task_run_id = task_run_id
    return record


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (trial_error(), False),
        (TimedOutTrialError("Trial 2 timed out", trial_number=2, run_id="x"), False),
        (SearchInterruptedError("The user interrupted the search."), False),
        (caused_by(SearchFailedError("stopped"), trial_error()), False),
        (SearchFailedError("No trial completed out of 3."), False),
        (caused_by(SearchFailedError("stopped"), KeyError("bug")), True),
        (KeyError("a bug in a task"), True),
        (RuntimeError("a bug in the flow"), True),
    ],
)
def test_filter_drops_expected_exceptions(error: BaseException, shown: bool) -> None:
    assert ExpectedFailureFilter().filter(error_record(error)) is shown


def test_filter_drops_expected_arguments() -> None:
    search_failed = caused_by(SearchFailedError("stopped"), trial_error())
    buggy_search = caused_by(SearchFailedError("stopped"), KeyError("bug"))
    log_filter = ExpectedFailureFilter()

    assert not log_filter.filter(error_record(args=("run-id", search_failed)))
    assert log_filter.filter(error_record(args=("run-id", buggy_search)))
    assert log_filter.filter(error_record(args=("run-id", "text")))


def test_filter_drops_marked_task_runs() -> None:
    log_filter = ExpectedFailureFilter()
    marked = "test-console-logs-marked"
    other = "test-console-logs-other"
    mark_expected_failure(marked)
    try:
        assert not log_filter.filter(error_record(task_run_id=marked))
        assert log_filter.filter(error_record(task_run_id=other))
    finally:
        clear_expected_failure(marked)
    assert log_filter.filter(error_record(task_run_id=marked))


def run_cli(
    spec_path: Path, tracking_uri: str, tmp_path: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    """Run `tuneflow tune` against the session's Prefect server, as a user would."""
    from prefect.settings import get_current_settings

    env = dict(
        os.environ,
        PYTHONPATH=f"{REPOSITORY}{os.pathsep}{TESTS}",
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_API_URL=str(get_current_settings().api.url),
    )
    # The command sets these itself, unless the caller did.
    env.pop("PREFECT_LOGGING_LEVEL", None)
    env.pop("PREFECT_LOGGING_HANDLERS_CONSOLE_CLASS", None)
    command = [sys.executable, "-m", "flows.cli", "tune", str(spec_path)]
    return subprocess.run(
        [*command, "--tracking-uri", tracking_uri, *options],
        env=env,
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=300,
    )


def trial_run_ids(tracking_uri: str, experiment: str) -> dict[str, str]:
    _, children = split_runs(experiment_runs(MlflowClient(tracking_uri), experiment))
    return {child.info.run_name: child.info.run_id for child in children}


@pytest.mark.usefixtures("prefect_backend")
def test_tune_hides_failure_tracebacks(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment="console-failures",
        max_trials=4,
        epochs=1,
        hypermodel="hypermodels:TrialOutcomesModel",
        extra=GRID_OF_OUTCOMES,
    )

    outcome = run_cli(spec_path, tracking_uri, tmp_path)

    stdout, stderr = outcome.stdout, outcome.stderr
    assert outcome.returncode == EXIT_SEARCH_FAILED, stdout + stderr[-3000:]
    assert stdout.count("Trial 0: val_accuracy=") == 1
    assert stdout.count("Trial 1 failed (MLflow run ") == 1
    assert stdout.count("RuntimeError: 16 units diverged in this test") == 1
    assert stdout.count("Trial 2 timed out (MLflow run ") == 1
    assert stdout.count("Trial 3 failed (MLflow run ") == 1
    assert stdout.count(TRACEBACK_HINT) == 1
    assert stderr.count("The search failed: The search stopped after trial 3") == 1
    assert "ended FAILED in MLflow." in stderr
    console = stdout + stderr
    # Each trial's error appears once, in its own line, not again in the
    # search's failure message.
    assert console.count("ObjectiveNotFoundError") == 1
    assert console.count("16 units diverged in this test") == 1
    assert "Search failed" in stdout
    assert "Traceback" not in console
    assert "Finished in state" not in console
    assert "Task run failed" not in console
    assert "Encountered exception" not in console
    assert "| ERROR" not in console

    # Prefect's server still has the tracebacks, for its UI.
    run_ids = trial_run_ids(tracking_uri, "console-failures")
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(text=LogFilterTextSearch(query=run_ids["trial-1"]))
        )
    assert any("Traceback" in log.message for log in logs)


@pytest.mark.usefixtures("prefect_backend")
def test_tune_verbose_shows_tracebacks(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment="console-verbose",
        max_trials=2,
        epochs=1,
        hypermodel="hypermodels:TrialOutcomesModel",
        extra=GRID_OF_OUTCOMES,
    )

    outcome = run_cli(spec_path, tracking_uri, tmp_path, "--verbose")

    stdout, stderr = outcome.stdout, outcome.stderr
    assert outcome.returncode == 0, stderr[-3000:]
    assert stdout.count("Trial 1 failed (MLflow run ") == 1
    assert TRACEBACK_HINT not in stdout
    assert "Traceback" in stderr
    assert "RuntimeError: 16 units diverged in this test" in stderr
    assert "Finished in state Failed" in stderr
