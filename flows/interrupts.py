"""Ctrl-C and closed pipes while `tuneflow tune` runs.

The first SIGINT requests a stop (`tasks.stop_request`): the search hands out
no more trials, the running trials stop at their next batch, their runs and
the search run end KILLED, and the command exits with `EXIT_INTERRUPTED`.
A second SIGINT ends the command, its worker processes and Prefect's
temporary server at once, and a rerun with a `project_name` resumes the search.
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
    """SIGINT handler: the first requests a stop, the second exits at once."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.num_interrupts = 0
        self.prefect_server: SubprocessASGIServer | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.num_interrupts += 1
        if self.num_interrupts == 1:
            request_stop()
            interrupt_worker_processes()
            self.console.print(
                "[yellow]Interrupted: stopping the running trials and ending their "
                "MLflow runs as KILLED. Press Ctrl-C again to exit at once.[/yellow]"
            )
            return

        self.console.print(
            "[red]Interrupted again: exiting at once. MLflow runs may stay "
            "RUNNING; rerunning a search with a project_name resumes it and ends "
            "them as KILLED.[/red]"
        )
        self._stop_child_processes()
        os._exit(EXIT_INTERRUPTED)

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
    """Install `InterruptHandler` for SIGINT inside the block, in the main thread.

    After an interrupt the handler stays, because the command then exits, and
    a second Ctrl-C while Prefect and MLflow shut down must still exit at once.
    In other threads Python cannot set signal handlers, and SIGINT keeps
    raising KeyboardInterrupt.
    """
    handler = InterruptHandler(console)
    clear_stop_request()
    if threading.current_thread() is not threading.main_thread():
        yield handler
        return

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield handler
    finally:
        if not handler.num_interrupts:
            signal.signal(signal.SIGINT, previous)


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
