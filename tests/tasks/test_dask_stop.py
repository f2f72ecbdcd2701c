"""The stop event that passes a search's stop request on to its trials on Dask."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from distributed import Client, Event, LocalCluster

from tasks.dask_stop import (
    SearchStopEvent,
    StopEventPoller,
    stop_event_name,
    stopping_with_search,
)
from tasks.stop_request import stop_requested

SEARCH_RUN_ID = "0123456789abcdef"
# Longer than any test takes, so that a poller with it reads the event once.
ONE_HOUR_SECONDS = 3600.0


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    """Connect to an in-process Dask cluster with one worker thread.

    Its scheduler and worker talk through Dask's in-process transport, so it
    opens no socket.
    """
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster, Client(cluster) as dask_client:
        yield dask_client


@pytest.fixture
def event_name(request: pytest.FixtureRequest, client: Client) -> Iterator[str]:
    """Return a stop event name of the test's own, and delete the event after it."""
    name = stop_event_name(request.node.name)
    yield name
    Event(name, client=client).clear()


def test_event_name_contains_run_id() -> None:
    assert stop_event_name(SEARCH_RUN_ID) == f"tuneflow-stop-{SEARCH_RUN_ID}"


def test_poller_reads_once_per_interval(client: Client, event_name: str) -> None:
    poller = StopEventPoller(client, event_name, interval_seconds=ONE_HOUR_SECONDS)

    first = poller()
    Event(event_name, client=client).set()
    second = poller()

    assert first is False
    assert second is False, "the second call comes before the interval ends"
    assert poller.num_reads == 1


def test_poller_stays_set_without_reading(client: Client, event_name: str) -> None:
    poller = StopEventPoller(client, event_name, interval_seconds=0.0)
    Event(event_name, client=client).set()

    answers = [poller() for _ in range(3)]
    Event(event_name, client=client).clear()

    assert answers == [True, True, True]
    assert poller.num_reads == 1
    assert poller() is True, "a stop, once seen, is not taken back"


def test_poller_with_closed_client_not_set(
    client: Client, event_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    Event(event_name, client=client).set()
    closed = Client(client.scheduler.address)
    closed.close()
    poller = StopEventPoller(closed, event_name, interval_seconds=0.0)

    answers = [poller(), poller()]

    assert answers == [False, False]
    warnings = [
        record.getMessage()
        for record in caplog.records
        if "Could not read the stop event" in record.getMessage()
    ]
    assert len(warnings) == 1, "only the first failed read is logged"
    assert "client is closed" in warnings[0]


def test_search_outside_worker_unchanged() -> None:
    with stopping_with_search(SEARCH_RUN_ID) as poller:
        requested = stop_requested()

    assert poller is None
    assert requested is False


def test_trial_on_worker_sees_stop_event(client: Client) -> None:
    def watch_search(search_run_id: str) -> tuple[bool, bool]:
        with stopping_with_search(search_run_id) as poller:
            return poller is not None, stop_requested()

    before = client.submit(watch_search, SEARCH_RUN_ID, pure=False).result()
    stop_event = SearchStopEvent(client, SEARCH_RUN_ID)
    stop_event.set()
    after = client.submit(watch_search, SEARCH_RUN_ID, pure=False).result()
    stop_event.remove()
    removed = client.submit(watch_search, SEARCH_RUN_ID, pure=False).result()

    assert before == (True, False)
    assert after == (True, True)
    assert removed == (True, False)
    assert stop_requested() is False, "the flow's process-wide request stays unset"


def test_stop_event_removed_only_after_set(client: Client) -> None:
    stop_event = SearchStopEvent(client, SEARCH_RUN_ID)
    Event(stop_event.event.name, client=client).set()

    stop_event.remove()

    assert Event(stop_event.event.name, client=client).is_set(), "never set here"
    Event(stop_event.event.name, client=client).clear()


def test_stop_event_with_closed_client_logs(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    closed = Client(client.scheduler.address)
    closed.close()
    stop_event = SearchStopEvent(closed, SEARCH_RUN_ID)

    stop_event.set()
    stop_event.remove()

    messages = [record.getMessage() for record in caplog.records]
    assert any("Could not set the stop event" in m for m in messages), messages
    assert any("Could not remove the stop event" in m for m in messages), messages
    assert not Event(stop_event.event.name, client=client).is_set()
