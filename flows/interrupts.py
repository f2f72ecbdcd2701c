"""Ctrl-C, SIGTERM and closed pipes while `tuneflow tune` runs.

The first SIGINT or SIGTERM requests a stop (`tasks.stop_request`). The search
then hands out no more trials, the running trials stop at their next batch,
and their runs and the search run end KILLED. The command exits with 128 plus
the signal's number: 130 for SIGINT, 143 for SIGTERM. A second signal ends the
command, its worker processes and Prefect's temporary server at once, and a
rerun with a `project_name` resumes the search.

NOTE: a SIGTERM sent to the whole process group also ends Prefect's temporary
server at once, and Prefect's client then retries its calls for about a
minute before the command exits. Send SIGTERM to the command's process only,
as `docker stop` and `kill PID` do.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING

from rich.console import Console

from tasks.stop_request import (
    clear_stop_request,
    interrupt_worker_processes,
    request_stop,
)

if TYPE_CHECKING:
    from prefect.server.api.server import SubprocessASGIServer

# 128 + SIGINT: the status a shell reports for a command that Ctrl-C ended.
EXIT_INTERRUPTED = 128 + signal.SIGINT
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# The handler of the `handling_interrupts` block in progress, if any.
_active_handler: InterruptHandler | None = None


class PipeSafeConsole(Console):
    """Rich console that drops its output once the reader of its pipe exits.

    With `tuneflow tune SPEC | tee log`, Ctrl-C ends `tee` too. Rich's own
    handling of the BrokenPipeError raises SystemExit from the print that met
    it, which would skip ending the search's MLflow runs.
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True
        # Later writes to the closed pipe, such as the interpreter's last
        # flush of sys.stdout at exit, go to /dev/null instead of failing.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.file.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass


class InterruptHandler:
    """SIGINT and SIGTERM handler: the first requests a stop, the second exits at once."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.num_interrupts = 0
        self.signal_number: int | None = None
        self.prefect_server: SubprocessASGIServer | None = None

    @property
    def exit_code(self) -> int:
        """Return 128 plus the number of the first stop signal, as shells report it."""
        return 128 + (self.signal_number or signal.SIGINT)

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.num_interrupts += 1
        if self.num_interrupts == 1:
            self.signal_number = signum
            request_stop()
            interrupt_worker_processes()
            if signum == signal.SIGINT:
                cause, again = "Interrupted", "Press Ctrl-C again"
            else:
                cause, again = "Terminated (SIGTERM)", "Send SIGTERM again"
            self.console.print(
                f"[yellow]{cause}: stopping the running trials and ending their "
                f"MLflow runs as KILLED. {again} to exit at once.[/yellow]"
            )
            return

        self.console.print(
            "[red]Interrupted again: exiting at once. MLflow runs may stay "
            "RUNNING; rerunning a search with a project_name resumes it and ends "
            "them as KILLED.[/red]"
        )
        self._stop_child_processes()
        os._exit(self.exit_code)

    def _stop_child_processes(self) -> None:
        """Kill the worker processes and stop Prefect's temporary server.

        Neither ends at the terminal's SIGINT: the workers turn it into a stop
        request, and the server does not receive it.
        """
        for process in multiprocessing.active_children():
            process.kill()
        server = self.prefect_server
        if server is not None and server.server_process is not None:
            server.server_process.terminate()


@contextlib.contextmanager
def handling_interrupts(console: Console) -> Iterator[InterruptHandler]:
    """Install `InterruptHandler` for SIGINT and SIGTERM inside the block.

    After an interrupt the handler stays, because the command then exits, and
    a second Ctrl-C while Prefect and MLflow shut down must still exit at once.
    Only the main thread can set signal handlers, so in other threads SIGINT
    keeps raising KeyboardInterrupt. Prefect replaces the SIGTERM handler
    while a flow runs, and `keeping_sigterm_handler` puts this one back.
    """
    global _active_handler
    handler = InterruptHandler(console)
    clear_stop_request()
    if threading.current_thread() is not threading.main_thread():
        yield handler
        return

    previous = {number: signal.signal(number, handler) for number in STOP_SIGNALS}
    _active_handler = handler
    try:
        yield handler
    finally:
        _active_handler = None
        if not handler.num_interrupts:
            for number, previous_handler in previous.items():
                signal.signal(number, previous_handler)


@contextlib.contextmanager
def keeping_sigterm_handler() -> Iterator[None]:
    """Handle SIGTERM with the `handling_interrupts` handler inside the block.

    Prefect's flow engine replaces the SIGTERM handler with one that raises
    an exception in the main thread, which would leave the trials training
    and their runs RUNNING. Outside `handling_interrupts`, or off the main
    thread, this changes nothing, so flows that a Prefect worker runs keep
    Prefect's cancellation.
    """
    handler = _active_handler
    if handler is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        if not handler.num_interrupts:
            signal.signal(signal.SIGTERM, previous)


def start_temporary_prefect_server() -> SubprocessASGIServer | None:
    """Start Prefect's temporary server now, out of reach of the terminal's Ctrl-C.

    Prefect starts that server on first use when PREFECT_API_URL is unset, in
    this process's process group, so the terminal's SIGINT ended it and every
    later API call retried for more than a minute. Started here with SIGINT
    blocked, the server inherits the blocked signal (POSIX keeps the signal
    mask across fork and exec, and uvicorn does not unblock it), and Prefect
    stops it with SIGTERM when this process exits. Returns None when an API
    URL is set or the temporary server is disabled.
    """
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        return None

    server = SubprocessASGIServer()
    if not hasattr(signal, "pthread_sigmask"):
        server.start()
        return server
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        server.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask)
    return server
