"""The Dask engine: trial tasks run on a Dask cluster through prefect-dask.

With `engine = "dask"`, the flow submits each trial task to a `DaskTaskRunner`,
either on the scheduler at `[dask] address` or on a local cluster that the flow
starts and stops. A Dask worker runs `execute_trial` in its own process, loads
the data once and keeps it for its later trials. The workers report their task
runs to the flow's Prefect API and log their trials to an MLflow tracking server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ipaddress
import socket
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any
from urllib.parse import urlparse

import dask
from distributed.comm import parse_address, parse_host_port
from distributed.core import rpc
from distributed.security import Security
from prefect import get_run_logger
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings
from prefect.task_runners import TaskRunner
from prefect_dask import DaskTaskRunner

from tasks._spec_errors import SpecError
from tasks.dask_stop import SearchStopEvent
from tasks.spec import TuningSpec
from tasks.tracking import (
    TrackingUriSource,
    file_store_migration,
    mlflow_command,
    sqlite_database_path,
)

__all__ = [
    "check_scheduler",
    "check_tracking_store",
    "dask_task_runner",
    "running_on_dask",
    "stopping_dask_trials",
]

LOCAL_STORE_SCHEMES = ("", "file", "sqlite")
EXAMPLE_SERVER_URI = "http://127.0.0.1:5000"
# How long `check_scheduler` waits for the scheduler at [dask] address to
# respond. Without the check, distributed's client waits 30 s
# (distributed.comm.timeouts.connect) before it gives up.
SCHEDULER_CHECK_TIMEOUT_SECONDS = 5.0
# Seconds between two connection attempts of the scheduler check.
LISTENER_RETRY_SECONDS = 0.1
# The module that each worker process of the flow's local cluster preloads.
LOCAL_WORKER_PRELOAD = "tasks.dask_stop"


def check_scheduler(
    spec: TuningSpec, timeout_seconds: float = SCHEDULER_CHECK_TIMEOUT_SECONDS
) -> None:
    """Raise SpecError unless a Dask scheduler responds at the spec's `[dask] address`.

    The check connects and requests the server's identity. A refused
    connection is retried for up to `timeout_seconds`, so a scheduler that is
    still starting passes, and the server then has as long again to reply.
    A tcp:// address is first probed with a plain socket, so a refused
    connection is reported as such. Specs without an address pass.
    """
    address = spec.dask.address
    if spec.engine != "dask" or address is None:
        return

    scheme, location = parse_address(address)
    if scheme == "tcp":
        connect_error = _wait_for_listener(*parse_host_port(location), timeout_seconds)
        if connect_error is not None:
            raise SpecError(
                [
                    f"dask.address: could not connect to a Dask scheduler at "
                    f"{address} within {timeout_seconds:g} s "
                    f"({type(connect_error).__name__}: {connect_error}). Received: "
                    f"address={address!r}. {_scheduler_fix(address)}"
                ]
            )
    try:
        identity = _run_coroutine(_request_identity(address, timeout_seconds))
    except TimeoutError:
        problem = (
            f"the server at {address} accepted the connection but did not reply "
            f"as a Dask scheduler within {timeout_seconds:g} s"
        )
    except OSError as error:
        problem = (
            f"could not connect to a Dask scheduler at {address} within "
            f"{timeout_seconds:g} s ({_root_cause(error)})"
        )
    except Exception as error:
        # A server that does not speak Dask's protocol can fail its decoder in
        # any way: with distributed 2026.8.0, an HTTP reply read as a frame
        # length raised MemoryError.
        problem = (
            f"the connection to a Dask scheduler at {address} failed "
            f"({type(error).__name__}: {error})"
        )
    else:
        server_type = identity.get("type") if isinstance(identity, dict) else None
        if server_type == "Scheduler":
            return
        problem = (
            f"the server at {address} replied as a Dask {server_type}, not as a "
            "scheduler"
        )
    raise SpecError(
        [
            f"dask.address: {problem}. Received: address={address!r}. "
            f"{_scheduler_fix(address)}"
        ]
    )


def _wait_for_listener(host: str, port: int, timeout_seconds: float) -> OSError | None:
    """Return None once a TCP connection to host:port succeeds, else the last error.

    Refused connections are retried until `timeout_seconds` have passed, so a
    scheduler that is still starting passes. Probing with a plain socket
    first keeps the error a user sees the connection's own, such as
    ConnectionRefusedError, whatever the machine's load.
    """
    deadline = time.monotonic() + timeout_seconds
    while True:
        remaining = deadline - time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=max(remaining, 0.1)):
                return None
        except OSError as error:
            if time.monotonic() + LISTENER_RETRY_SECONDS >= deadline:
                return error
        time.sleep(LISTENER_RETRY_SECONDS)


async def _request_identity(address: str, timeout_seconds: float) -> Any:
    """Connect to a Dask server and return its reply to an `identity` request."""
    connection_args = Security().get_connection_args("client")
    async with rpc(
        address, timeout=timeout_seconds, connection_args=connection_args
    ) as server:
        # The connection attempt stops after timeout_seconds, but its
        # handshake and the request wait for a reply without a limit.
        return await asyncio.wait_for(server.identity(), 2 * timeout_seconds)


def _run_coroutine(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to its end, in a new thread if this one runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _root_cause(error: BaseException) -> str:
    """Describe the innermost error of a chain, such as a refused connection."""
    while error.__cause__ is not None:
        error = error.__cause__
    return f"{type(error).__name__}: {error}"


def _scheduler_fix(address: str) -> str:
    """Say how to start a scheduler at the address, or how to do without one."""
    _, location = parse_address(address)
    host, port = parse_host_port(location)
    return (
        f"Start a scheduler there with `dask scheduler --host {host} --port "
        f"{port}` and its workers with `dask worker {address} --nthreads 1`, or "
        "remove address from [dask] to start a local cluster of [dask] n_workers "
        "worker processes for the search."
    )


def check_tracking_store(
    spec: TuningSpec, tracking_uri: str, source: TrackingUriSource | None = None
) -> None:
    """Reject a local MLflow store (SQLite or files) when trials run on Dask.

    `source` is the setting the URI came from, given by the command line.

    Raises:
        SpecError: engine = "dask" with a `sqlite:` or file store. The message
            gives the `mlflow server` command for a SQLite database and the
            settings that point the search at the server.
    """
    if spec.engine != "dask" or not is_local_store(tracking_uri):
        return

    mlflow = mlflow_command()
    database = sqlite_database_path(tracking_uri)
    migration = ""
    if database is None:
        _, database, migrate = file_store_migration(tracking_uri)
        migration = (
            f" `{migrate}` copies the runs of the file store into that database first."
        )
    raise SpecError(
        [
            "mlflow.tracking_uri: engine = 'dask' logs the trials from Dask worker "
            "processes, possibly on other machines, so they need an MLflow "
            "tracking server rather than a local store. Received: "
            f"tracking_uri={tracking_uri!r}. Start a server with `{mlflow} server "
            f"--backend-store-uri sqlite:///{database} --host 127.0.0.1 --port "
            f"5000`, then {_server_settings(spec, source)}.{migration}"
        ]
    )


def _server_settings(spec: TuningSpec, source: TrackingUriSource | None) -> str:
    """List the settings that would point the search at EXAMPLE_SERVER_URI.

    --tracking-uri exists only on the command line (a known `source`). It
    comes before the spec's tracking_uri, which comes before the variable.
    """
    settings = []
    if source is not None:
        settings.append(f"pass --tracking-uri {EXAMPLE_SERVER_URI}")
    if source is not TrackingUriSource.OPTION:
        settings.append(
            f"set [mlflow] tracking_uri = '{EXAMPLE_SERVER_URI}' in the spec"
        )
    if source in (TrackingUriSource.ENVIRONMENT, TrackingUriSource.DEFAULT) or (
        source is None and spec.mlflow.tracking_uri is None
    ):
        settings.append(f"set MLFLOW_TRACKING_URI={EXAMPLE_SERVER_URI}")
    return ", or ".join(settings)


def is_local_store(tracking_uri: str) -> bool:
    """Return whether the URI names a SQLite database or a folder of files."""
    if tracking_uri == "databricks":
        return False
    scheme = urlparse(tracking_uri).scheme
    # A one-letter scheme is a Windows drive letter, so the URI is a path.
    return scheme in LOCAL_STORE_SCHEMES or len(scheme) == 1


def dask_task_runner(spec: TuningSpec) -> DaskTaskRunner:
    """Build the task runner for the spec's `[dask]` table.

    Without an address, the runner starts a `distributed.LocalCluster` on
    127.0.0.1 with `n_workers` processes (default: `concurrency`) of one thread
    each, so that every trial trains in a process of its own.
    """
    if spec.dask.address is not None:
        return DaskTaskRunner(address=spec.dask.address)
    # NOTE: a worker that imported TensorFlow can take longer to exit than the
    # 4 s that a Dask nanny waits, so stopping the cluster may log "Worker
    # process still alive ..., killing". Every trial has ended by then.
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": spec.dask.n_workers or spec.concurrency,
            "threads_per_worker": 1,
            "processes": True,
            "host": "127.0.0.1",
            "dashboard_address": "127.0.0.1:0",
            # The worker processes share the terminal's process group, and
            # this preload makes them ignore its Ctrl-C (see tasks.dask_stop).
            "preload": [
                *dask.config.get("distributed.worker.preload", default=[]),
                LOCAL_WORKER_PRELOAD,
            ],
        },
    )


@contextlib.contextmanager
def running_on_dask(spec: TuningSpec, tracking_uri: str) -> Iterator[DaskTaskRunner]:
    """Start or connect to the spec's Dask cluster, and yield its task runner.

    The flow's Prefect API URL is pinned in the settings that Prefect sends
    with each task, so Dask workers report to the flow's server, including
    the temporary local one that starts when PREFECT_API_URL is unset.

    Raises:
        RuntimeError: the scheduler at `[dask] address` cannot be reached.
    """
    api_url = get_current_settings().api.url or flow_api_url()
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        with dask_task_runner(spec) as runner:
            workers = connect(runner, spec)
            describe_cluster(spec, workers)
            if spec.dask.address is not None and not is_loopback(spec.dask.address):
                warn_loopback_services(
                    spec.dask.address,
                    {"Prefect API": api_url, "MLflow tracking server": tracking_uri},
                )
            yield runner


@contextlib.contextmanager
def stopping_dask_trials(
    task_runner: TaskRunner[PrefectFuture[Any]] | None, search_run_id: str
) -> Iterator[Callable[[], None] | None]:
    """Yield the function that stops the search's trials on Dask, or None off Dask.

    The function sets the search's stop event (`tasks.dask_stop`), and the
    event is deleted from the scheduler when the block ends.
    """
    if not isinstance(task_runner, DaskTaskRunner):
        yield None
        return

    stop_event = SearchStopEvent(task_runner.client, search_run_id)
    try:
        yield stop_event.set
    finally:
        stop_event.remove()


def flow_api_url() -> str:
    """Return the API URL of the running flow's Prefect client."""
    context = FlowRunContext.get()
    if context is None or context.client is None:
        raise RuntimeError("running_on_dask must be called inside a running flow.")
    return str(context.client.api_url).rstrip("/")


def connect(runner: DaskTaskRunner, spec: TuningSpec) -> dict[str, Any]:
    """Connect the runner's Dask client and return the scheduler's worker table."""
    try:
        client = runner.client
    except (OSError, TimeoutError) as error:
        raise RuntimeError(
            f"Could not connect to the Dask scheduler at {spec.dask.address}: "
            f"{error}. Start it with `dask scheduler` and its workers with `dask "
            "worker ADDRESS --nthreads 1`, or fix [dask] address in the spec."
        ) from error
    return client.scheduler_info(n_workers=-1).get("workers", {})


def describe_cluster(spec: TuningSpec, workers: dict[str, Any]) -> None:
    """Log the cluster's workers, and warn about workers that slow the trials."""
    logger = get_run_logger()
    address = spec.dask.address
    cluster = f"the Dask cluster at {address}" if address else "a local Dask cluster"
    threads = [int(info.get("nthreads", 1)) for info in workers.values()]
    logger.info(
        "Running trials on %s: %d worker(s), up to %d trial(s) at once.",
        cluster,
        len(workers),
        spec.concurrency,
    )
    if not workers:
        logger.warning(
            "No worker has joined %s yet, so the trials wait until one does. Start "
            "workers with `dask worker %s --nthreads 1`.",
            cluster,
            address,
        )
    if any(count > 1 for count in threads):
        logger.warning(
            "Some workers of %s run %d threads. Trials in one worker process take "
            "turns, because they share Keras's global state. Start the workers "
            "with `dask worker ADDRESS --nthreads 1 --nworkers N` to run N trials "
            "at once.",
            cluster,
            max(threads),
        )


def warn_loopback_services(address: str, services: dict[str, str]) -> None:
    """Warn about each service URL on 127.0.0.1 that remote workers cannot reach."""
    for service, url in services.items():
        if is_loopback(url):
            get_run_logger().warning(
                "The Dask scheduler %s is on another host, but the %s at %s is only "
                "reachable from this machine. Point it at an address that the Dask "
                "workers can reach.",
                address,
                service,
                url,
            )


def is_loopback(address: str) -> bool:
    """Return whether a URL or Dask address names this machine's loopback host."""
    host = urlparse(address if "://" in address else f"tcp://{address}").hostname
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
