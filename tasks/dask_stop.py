"""A search's stop request, passed to its trials on Dask workers as a distributed.Event.

Ctrl-C requests the stop in the flow's process only (`tasks.stop_request`),
and Dask workers run in other processes, possibly on other machines. So the
flow sets an Event named after the search run on the Dask scheduler, and each
trial of the search that trains on a worker polls it from its stop checks.

The worker processes of the local cluster that the flow starts load this
module as a Dask preload, whose `dask_setup` makes them ignore SIGINT.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Iterator

from distributed import Client, Event, Worker, get_client, get_worker

from tasks.stop_request import also_stopping_when

logger = logging.getLogger(__name__)

# The minimum time between two requests that a trial sends to the scheduler to
# read the stop event. Training checks for a stop before every batch, and one
# request per batch would add a network round trip to each.
# NOTE: each read blocks training for one round trip, about 1 ms to a scheduler
# on 127.0.0.1 (measured). By estimate, a scheduler 50 ms away costs a tenth
# of the training time.
STOP_POLL_INTERVAL_SECONDS = 0.5


def stop_event_name(search_run_id: str) -> str:
    """Return the name of the Event that stops the trials of one search run."""
    return f"tuneflow-stop-{search_run_id}"


class StopEventPoller:
    """Stop check that reads a stop event from the scheduler at most once per interval.

    Called, it returns whether the event is set. Between two reads it returns
    the last value read, and after one read returns True it returns True
    without reading again. A read that fails counts as not set, and only the
    first failure is logged.
    """

    def __init__(
        self,
        client: Client,
        event_name: str,
        interval_seconds: float = STOP_POLL_INTERVAL_SECONDS,
    ) -> None:
        self.client = client
        self.event = Event(event_name, client=client)
        self.interval_seconds = interval_seconds
        self.is_set = False
        self.num_reads = 0
        self._last_read: float | None = None
        self._failure_logged = False

    def __call__(self) -> bool:
        if self.is_set:
            return True
        now = time.monotonic()
        last_read = self._last_read
        if last_read is not None and now - last_read < self.interval_seconds:
            return False

        self._last_read = now
        self.num_reads += 1
        # A closed client, as in a worker that is shutting down, has no
        # connection to send the request on.
        if self.client.status != "running":
            self._log_failure(f"the worker's Dask client is {self.client.status}")
            return False
        try:
            self.is_set = bool(self.event.is_set())
        except (OSError, TimeoutError) as error:
            self._log_failure(str(error))
        return self.is_set

    def _log_failure(self, reason: str) -> None:
        if self._failure_logged:
            return
        self._failure_logged = True
        logger.warning(
            "Could not read the stop event %s from the Dask scheduler, so the "
            "trial keeps training: %s",
            self.event.name,
            reason,
        )


@contextlib.contextmanager
def stopping_with_search(search_run_id: str) -> Iterator[StopEventPoller | None]:
    """Make `stop_requested()` inside the block poll the search's stop event.

    Outside a Dask worker's task it changes nothing and yields None.
    """
    try:
        get_worker()
    except ValueError:
        yield None
        return

    poller = StopEventPoller(get_client(), stop_event_name(search_run_id))
    with also_stopping_when(poller):
        yield poller


class SearchStopEvent:
    """The flow's side of a search's stop event: set at a stop request, then removed.

    `remove` deletes the event from the scheduler once the search's trials
    have ended, so that a long-running scheduler keeps no event per search.
    """

    def __init__(self, client: Client, search_run_id: str) -> None:
        self.client = client
        self.event = Event(stop_event_name(search_run_id), client=client)
        self.was_set = False

    def set(self) -> None:
        """Set the event, which stops the search's trials at their next check."""
        self.was_set = True
        try:
            self._check_client()
            self.event.set()
        except (OSError, TimeoutError) as error:
            logger.warning(
                "Could not set the stop event %s on the Dask scheduler, so trials "
                "on Dask workers run to their end: %s",
                self.event.name,
                error,
            )
            return
        logger.info(
            "Set the stop event %s on the Dask scheduler: trials on Dask workers "
            "stop at their next check.",
            self.event.name,
        )

    def remove(self) -> None:
        """Delete the event from the scheduler, if it was set."""
        if not self.was_set:
            return
        try:
            self._check_client()
            self.event.clear()
        except (OSError, TimeoutError) as error:
            logger.warning(
                "Could not remove the stop event %s from the Dask scheduler: %s",
                self.event.name,
                error,
            )

    def _check_client(self) -> None:
        # A closed client has no connection, and its requests fail with an
        # AttributeError (distributed 2026.8.0).
        if self.client.status != "running":
            raise ConnectionError(f"the flow's Dask client is {self.client.status}")


def dask_setup(worker: Worker) -> None:
    """Make this Dask worker process ignore SIGINT; Dask calls it for a preload.

    A terminal's Ctrl-C reaches every process of its foreground process group,
    which contains the worker processes of a local cluster that the flow
    started. With distributed 2026.8.0, such a worker closed at the SIGINT
    and cancelled its trial, and the flow waited for that trial without end.
    Ignoring SIGINT, the worker lets its trial stop at the search's stop
    event instead.
    """
    # Python sets signal handlers in the main thread only, which runs the
    # event loop of a worker process that a Dask nanny started.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
