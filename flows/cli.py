"""The `tuneflow` command line: check a job spec, or run its search with progress.

Prefect, MLflow and Keras load inside the commands, after the environment
defaults below are in place, so `tuneflow --help` stays fast.
"""

from __future__ import annotations

import gc
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from flows.events import SearchListener
from flows.interrupts import (
    InterruptHandler,
    PipeSafeConsole,
    handling_interrupts,
    start_temporary_prefect_server,
)
from tasks.stop_request import SearchInterruptedError, stop_requested

if TYPE_CHECKING:
    from tasks.results import SearchResult, TrialResult
    from tasks.spec import TuningSpec

app = typer.Typer(
    name="tuneflow",
    help="Tune Keras hyperparameters, orchestrated by Prefect and tracked in MLflow.",
    no_args_is_help=True,
    add_completion=False,
)

# Telemetry stays off and library logs stay short unless the caller sets these.
ENVIRONMENT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}

# Prefect's logging setting for the class of its console handler, and the
# class that leaves out the errors of expected trial failures.
CONSOLE_HANDLER_SETTING = "PREFECT_LOGGING_HANDLERS_CONSOLE_CLASS"
TRIAL_CONSOLE_HANDLER = "flows.console_logs.TrialConsoleHandler"

# Without --verbose, MLflow prints no "View run" links when a run on a
# tracking server ends (the summary names the runs), and MLflow, Dask's
# scheduler and Dask's workers log only warnings. Local Dask workers inherit these.
QUIET_DEFAULTS = {
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "DASK_LOGGING__DISTRIBUTED": "warning",
}

EXIT_SEARCH_FAILED = 1
EXIT_INVALID_SPEC = 2

SPEC_ARGUMENT = typer.Argument(..., metavar="SPEC", help="Path of the TOML job spec.")


def apply_environment_defaults(verbose: bool) -> None:
    """Set the defaults above, and Prefect's log level, where the caller has not.

    Without `verbose`, Prefect's console also leaves out the errors of trials
    that fail as expected (`flows.console_logs`), which the command reports in
    one line each, and QUIET_DEFAULTS apply. Prefect, MLflow and Dask read
    these settings when they are first imported.
    """
    for name, value in ENVIRONMENT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO" if verbose else "WARNING")
    if not verbose:
        os.environ.setdefault(CONSOLE_HANDLER_SETTING, TRIAL_CONSOLE_HANDLER)
        for name, value in QUIET_DEFAULTS.items():
            os.environ.setdefault(name, value)


def check_backends(spec: TuningSpec, spec_path: Path, tracking_uri: str | None) -> None:
    """Raise SpecError for a tracking store or Dask scheduler the search cannot use.

    Trials on Dask need a tracking server, a tracking server must respond, and
    so must the Dask scheduler at `[dask] address`. `tracking_uri` is the
    --tracking-uri option, None when it is not given. The error names the spec
    file, and the setting that the tracking URI came from.
    """
    from flows.dask_engine import check_scheduler, check_tracking_store
    from tasks.spec import SpecError
    from tasks.tracking import (
        check_tracking_server,
        check_tracking_uri,
        resolve_tracking_uri,
        tracking_uri_source,
    )

    uri = resolve_tracking_uri(tracking_uri, spec.mlflow.tracking_uri)
    source = tracking_uri_source(tracking_uri, spec.mlflow.tracking_uri)
    try:
        check_tracking_store(spec, uri, source)
        check_tracking_uri(uri, source)
        check_tracking_server(uri, source=source)
        check_scheduler(spec)
    except SpecError as error:
        if error.source is None:
            raise SpecError(error.problems, str(spec_path)) from None
        raise


TRACKING_URI_OPTION = typer.Option(
    None,
    "--tracking-uri",
    help="MLflow tracking URI. Overrides the spec's [mlflow] tracking_uri and "
    "$MLFLOW_TRACKING_URI; the default is sqlite:///<cwd>/mlflow.db.",
)


@app.command()
def validate(
    spec_path: Path = SPEC_ARGUMENT,
    tracking_uri: str | None = TRACKING_URI_OPTION,
) -> None:
    """Check a spec, its data and its search space without training anything."""
    apply_environment_defaults(verbose=False)
    from flows.spec_summary import print_spec_summary
    from tasks.preparation import check_saved_search, validate_spec_file
    from tasks.spec import SpecError
    from tasks.tracking import resolve_tracking_uri

    console = Console(soft_wrap=True)
    try:
        report = validate_spec_file(spec_path)
        check_backends(report.spec, spec_path, tracking_uri)
        uri = resolve_tracking_uri(tracking_uri, report.spec.mlflow.tracking_uri)
        num_saved = check_saved_search(report, uri)
    except SpecError as error:
        if error.source is None:
            error = SpecError(error.problems, str(spec_path))
        Console(stderr=True, soft_wrap=True).print(f"[red]{escape(str(error))}[/red]")
        raise typer.Exit(EXIT_INVALID_SPEC) from None

    data_ref = report.data_ref
    console.print(f"[green]{escape(str(spec_path))} is valid.[/green]")
    console.print(
        f"Data: {data_ref.num_samples} samples from "
        f"{escape(data_ref.path or data_ref.source)}"
        f", {100 * data_ref.validation_split:.0f}% held out for validation."
    )
    print_spec_summary(console, report, uri)
    if num_saved:
        console.print(
            f"Saved search: {num_saved} finished trial(s) under project_name "
            f"{report.spec.project_name!r}, which tune resumes."
        )


@app.command()
def tune(
    spec_path: Path = SPEC_ARGUMENT,
    tracking_uri: str | None = TRACKING_URI_OPTION,
    verbose: bool = typer.Option(
        False,
        "--verbose",
        "-v",
        help="Show Prefect's INFO logs, and its tracebacks of failed trials.",
    ),
) -> None:
    """Run the search a spec describes and report the best trial.

    Ctrl-C stops the search: finished trials are kept, the running trials and
    the search end KILLED in MLflow, and the command exits with code 130. A
    second Ctrl-C exits at once.
    """
    apply_environment_defaults(verbose)
    from tasks.preparation import validate_spec_file
    from tasks.spec import SpecError
    from tasks.tracking import resolve_tracking_uri

    console = PipeSafeConsole(soft_wrap=True)
    errors = PipeSafeConsole(stderr=True, soft_wrap=True)
    # Interrupt messages go to stderr, which stays on the terminal when stdout
    # goes to `tee`, a pipe that Ctrl-C closes too.
    with handling_interrupts(errors) as interrupts:
        try:
            report = validate_spec_file(spec_path)
        except SpecError as error:
            errors.print(f"[red]{escape(str(error))}[/red]")
            raise typer.Exit(EXIT_INVALID_SPEC) from None

        spec = report.spec
        uri = resolve_tracking_uri(tracking_uri, spec.mlflow.tracking_uri)
        try:
            check_backends(spec, spec_path, tracking_uri)
        except SpecError as error:
            errors.print(f"[red]{escape(str(error))}[/red]")
            raise typer.Exit(EXIT_INVALID_SPEC) from None
        _print_backends(console, uri)
        if not stop_requested():
            interrupts.prefect_server = start_temporary_prefect_server()
        # The default store and the saved search are found from the working
        # directory, so the command names it.
        resume_command = f"cd {shlex.quote(str(Path.cwd()))} && " + shlex.join(
            [sys.argv[0] or "tuneflow", "tune", str(spec_path)]
            + (["--tracking-uri", tracking_uri] if tracking_uri else [])
        )
        result = _run_search(
            console, errors, spec_path, spec, uri, resume_command, interrupts
        )

    print_summary(console, result)
    if stop_requested():
        console.print("The search finished before the interrupt could stop it.")


def _run_search(
    console: Console,
    errors: Console,
    spec_path: Path,
    spec: TuningSpec,
    tracking_uri: str,
    resume_command: str,
    interrupts: InterruptHandler,
) -> SearchResult:
    """Run `tune_flow` with a progress bar; exit with the code of a failure or stop."""
    from flows.events import listening
    from flows.local_prefect import local_mode_settings
    from flows.trial_loop import SearchFailedError
    from flows.tuning import tune_flow
    from tasks.oracles import planned_num_trials
    from tasks.spec import SpecError

    with _progress(console) as progress:
        listener = ProgressListener(
            progress,
            spec.objective.name,
            planned_num_trials(spec),
            traceback_hint=os.environ.get(CONSOLE_HANDLER_SETTING)
            == TRIAL_CONSOLE_HANDLER,
        )
        try:
            if stop_requested():
                raise SearchInterruptedError("The user interrupted the search.")
            with listening(listener), local_mode_settings():
                return tune_flow(str(spec_path), tracking_uri=tracking_uri)
        except SpecError as error:
            errors.print(f"[red]{escape(str(error))}[/red]")
            raise typer.Exit(EXIT_INVALID_SPEC) from None
        except Exception as error:
            if not stop_requested():
                progress.update(listener.bar, description="Search failed")
                # The listener printed each failed trial's error already.
                reason = error.summary if isinstance(error, SearchFailedError) else error
                errors.print(f"[red]The search failed: {escape(str(reason))}[/red]")
                if listener.search_run_id is not None:
                    errors.print(
                        f"Search run {listener.search_run_id} ended FAILED in MLflow."
                    )
                raise typer.Exit(EXIT_SEARCH_FAILED) from None
            interruption = error
            progress.update(listener.bar, description="Search interrupted")

    print_interrupted(
        errors, interruption, spec, listener.search_run_id, resume_command
    )
    # The interpreter's last garbage collection, after the atexit handlers,
    # takes seconds with TensorFlow loaded, to free memory that the exit
    # frees anyway. Frozen objects are left out of it, and so are their
    # __del__ methods.
    gc.freeze()
    raise typer.Exit(interrupts.exit_code)


@app.command("data-updated")
def data_updated(
    data_path: Path = typer.Argument(
        ..., metavar="PATH", help="The new data file (.npz with x and y, or .csv)."
    ),
) -> None:
    """Announce new data with a Prefect event, which starts the retraining deployment."""
    apply_environment_defaults(verbose=False)
    from deployments.events import announce_data_file
    from tasks.data import DataError

    errors = Console(stderr=True)
    try:
        event = announce_data_file(data_path)
    except DataError as error:
        errors.print(f"[red]{escape(str(error))}[/red]")
        raise typer.Exit(EXIT_INVALID_SPEC) from None
    except RuntimeError as error:
        errors.print(f"[red]{escape(str(error))}[/red]")
        raise typer.Exit(EXIT_SEARCH_FAILED) from None

    Console().print(
        f"Sent event {event.event} ({event.id}) for {escape(event.payload['data_path'])}, "
        f"fingerprint {event.payload['fingerprint'][:12]}."
    )


def _print_backends(console: Console, tracking_uri: str) -> None:
    from prefect.settings import get_current_settings

    api_url = get_current_settings().api.url
    if api_url:
        console.print(f"Prefect API: {escape(api_url)}")
    else:
        console.print(
            "Prefect: PREFECT_API_URL is not set, so a temporary local server starts "
            "first and stops when the search ends."
        )
    console.print(f"MLflow tracking URI: {escape(tracking_uri)}")


def _progress(console: Console) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


class ProgressListener(SearchListener):
    """Shows one progress bar for the search and prints a line per finished trial.

    With `traceback_hint`, the first trial that fails with an error, not a
    timeout, is followed by a line that names the option showing tracebacks.
    """

    def __init__(
        self,
        progress: Progress,
        objective_name: str,
        max_trials: int | None,
        *,
        traceback_hint: bool = False,
    ) -> None:
        super().__init__()
        self.progress = progress
        self.objective_name = objective_name
        self.bar = progress.add_task("Starting Prefect and MLflow", total=max_trials)
        self.search_run_id: str | None = None
        self.traceback_hint = traceback_hint

    def search_started(self, max_trials: int | None, parent_run_id: str) -> None:
        self.search_run_id = parent_run_id
        self.progress.update(self.bar, description=f"Search run {parent_run_id[:8]}")

    def search_resumed(self, num_finished: int) -> None:
        self.progress.console.print(
            f"Resuming a saved search: {num_finished} trial(s) already finished."
        )
        self.progress.advance(self.bar, num_finished)

    def trial_started(self, number: int, values: dict[str, Any]) -> None:
        self.progress.update(self.bar, description=f"Trial {number} running")

    def trial_finished(self, result: TrialResult) -> None:
        outcome = "completed"
        if result["status"] == "COMPLETED":
            line = (
                f"Trial {result['number']}: {self.objective_name}="
                f"{result['score']:.4f} {_format_values(result['hyperparameters'])}"
            )
        else:
            message = escape(result["message"] or "")
            outcome = "failed"
            if result.get("failure_reason") == "timeout":
                outcome = "timed out"
            line = f"[red]Trial {result['number']} {outcome}: {message}"
            if message.startswith(f"Trial {result['number']} "):
                # Trial errors already start with "Trial N failed (MLflow run ...)".
                line = f"[red]{message}"
        self.progress.console.print(line)
        if self.traceback_hint and outcome == "failed":
            self.progress.console.print(
                "Run the command with --verbose to see the tracebacks of failed "
                "trials."
            )
            self.traceback_hint = False
        self.progress.advance(self.bar)

    def search_finished(self, stop_message: str | None) -> None:
        done = self.progress.tasks[self.bar].completed
        self.progress.update(self.bar, total=done, description="Search finished")
        if stop_message:
            self.progress.console.print(
                f"The oracle stopped the search: {stop_message}."
            )


def print_interrupted(
    console: Console,
    error: Exception,
    spec: TuningSpec,
    search_run_id: str | None,
    resume_command: str,
) -> None:
    """Print what an interrupted search kept and ended, and how to resume it."""
    console.print(f"[yellow]{escape(str(error))}[/yellow]")
    if search_run_id is None:
        console.print("No search run had started in MLflow.")
    else:
        console.print(
            f"Search run {search_run_id} and the trial runs that were running "
            "ended KILLED in MLflow; finished trial runs keep their models."
        )
    if spec.project_name is not None:
        console.print(
            f"Resume the search, running the stopped trials again, with: "
            f"{escape(resume_command)}"
        )
    else:
        console.print(
            "The spec sets no project_name, so rerunning it starts a new search."
        )


def print_summary(console: Console, result: SearchResult) -> None:
    """Print the best trial, its values and score, its run, and how to open the UI."""
    from tasks.tracking import ui_command

    best = result.best_trial
    if best is None:
        if any(trial["status"] == "COMPLETED" for trial in result.trials):
            console.print(
                f"[red]Every completed trial scored {escape(result.objective)} = NaN, "
                "so no trial is best and no model was registered.[/red]"
            )
        else:
            console.print("[red]No trial completed.[/red]")
        return

    table = Table(title=f"Best trial: {best['number']}", show_header=True)
    table.add_column("hyperparameter")
    table.add_column("value")
    for name, value in best["hyperparameters"].items():
        table.add_row(name, repr(value))
    console.print(table)
    console.print(
        f"Objective: {result.objective} ({result.direction}) = {best['score']:.6g} "
        # Keras counts epochs from 1 ("Epoch 3/3"), MLflow's steps from 0.
        f"after epoch {best['best_epoch'] + 1} (MLflow step {best['best_epoch']})"
    )
    console.print(f"Best trial's MLflow run id: {best['run_id']}")
    console.print(
        f"Search run id: {result.parent_run_id} (experiment {result.experiment_name!r})"
    )
    if result.registered_model is not None:
        registered = result.registered_model
        console.print(
            f"Registered model: {registered.name} version {registered.version}, alias "
            f"{registered.alias!r} ({registered.model_uri})"
        )

    command = ui_command(result.tracking_uri)
    if command is None:
        console.print(f"MLflow UI: {result.tracking_uri}")
    else:
        console.print(f"Open the MLflow UI with: {escape(command)}")


def _format_values(values: dict[str, Any]) -> str:
    return " ".join(f"{name}={value!r}" for name, value in values.items())


if __name__ == "__main__":
    app()
