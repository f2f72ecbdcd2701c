"""Progress events of a search, for a caller in the same process such as the CLI."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from tasks.results import TrialResult

logger = logging.getLogger(__name__)


class SearchListener:
    """Receives progress events; override the methods you need, the rest do nothing."""

    def search_started(self, max_trials: int | None, parent_run_id: str) -> None:
        """Handle the start of the search, once its parent run exists.

        `max_trials` is None when the number of trials is not known in advance.
        """

    def search_resumed(self, num_finished: int) -> None:
        """Handle a resumed search whose `num_finished` trials already finished."""

    def trial_started(self, number: int, values: dict[str, Any]) -> None:
        """Handle the submission of a trial task with these hyperparameter values."""

    def trial_finished(self, result: TrialResult) -> None:
        """Handle a trial that completed or failed."""

    def search_finished(self, stop_message: str | None) -> None:
        """Handle the end of the search, with the oracle's reason to stop."""


_listeners: ContextVar[tuple[SearchListener, ...]] = ContextVar(
    "tuneflow_search_listeners", default=()
)


@contextlib.contextmanager
def listening(listener: SearchListener) -> Iterator[SearchListener]:
    """Send the events of searches run inside this block to `listener`."""
    token = _listeners.set((*_listeners.get(), listener))
    try:
        yield listener
    finally:
        _listeners.reset(token)


def notify(event: str, *args: Any) -> None:
    """Call `event` on every listener; a failing listener is logged, not raised."""
    for listener in _listeners.get():
        try:
            getattr(listener, event)(*args)
        except Exception:
            logger.exception("Search listener %r failed on %s.", listener, event)
