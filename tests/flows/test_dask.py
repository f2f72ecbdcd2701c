"""Trials on Dask: worker processes of a local cluster and a real MLflow server."""

from __future__ import annotations

import importlib
import logging
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import psutil
import pytest
from distributed import Client, LocalCluster
from distributed.protocol import pickle as dask_pickle
from mlflow import MlflowClient
from mlflow.entities import Run
from pipeline_runs import experiment_runs, split_runs, trial_task_runs
from pipeline_specs import write_tiny_spec
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from server_processes import ServerProcess, free_port
from typer.testing import CliRunner

from flows.cli import EXIT_INVALID_SPEC, app
from flows.dask_engine import (
    check_scheduler,
    dask_task_runner,
    is_local_store,
    is_loopback,
)
from flows.tuning import tune_flow
from tasks.spec import SpecError, TuningSpec, parse_spec
from tasks.tracking import WORKER_TAG, mlflow_command
from tasks.trial import run_trial

pytestmark = pytest.mark.usefixtures("prefect_backend")

PER_EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
STORE_ERRORS = ("database is locked", "already exists")
LOG_WAIT_SECONDS = 15.0
# A short limit for the scheduler checks that this file calls directly.
CHECK_TIMEOUT_SECONDS = 1.0


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[LocalCluster]:
    """Start a Dask cluster of 2 worker processes with one thread each on 127.0.0.1."""
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        yield cluster


def worker_pid(run: Run) -> int:
    return int(run.data.tags[WORKER_TAG].rsplit(":", 1)[1])


def flow_run_logs(flow_run_id: UUID, expected: int) -> list[str]:
    """Return the flow run's Prefect logs once `expected` trials logged their end.

    Dask workers send their task run logs in batches, so they may arrive after
    the flow run ends.
    """
    deadline = time.monotonic() + LOG_WAIT_SECONDS
    while True:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(
                LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
            )
        messages = [log.message for log in logs]
        finished = [m for m in messages if " finished with " in m]
        if len(finished) >= expected or time.monotonic() > deadline:
            return messages
        time.sleep(0.5)


def assert_complete_series(client: MlflowClient, run: Run, epochs: int) -> None:
    for metric in PER_EPOCH_METRICS:
        history = client.get_metric_history(run.info.run_id, metric)
        steps = sorted(point.step for point in history)
        assert steps == list(range(epochs)), (run.info.run_name, metric, steps)


@pytest.mark.parametrize(
    ("tracking_uri", "local"),
    [
        ("sqlite:////data/mlflow.db", True),
        ("sqlite:///mlflow.db", True),
        ("file:///data/mlruns", True),
        ("mlruns", True),
        ("http://127.0.0.1:5000", False),
        ("https://mlflow.example.com", False),
        ("postgresql://user@db/mlflow", False),
        ("databricks", False),
    ],
)
def test_local_store_detection(tracking_uri: str, local: bool) -> None:
    assert is_local_store(tracking_uri) is local


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("tcp://127.0.0.1:8786", True),
        ("127.0.0.1:8786", True),
        ("tcp://[::1]:8786", True),
        ("http://localhost:4200/api", True),
        ("tcp://10.0.0.5:8786", False),
        ("scheduler.example.com:8786", False),
    ],
)
def test_loopback_detection(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_trial_task_pickles_for_dask() -> None:
    task = run_trial.with_options(retries=1)

    restored = dask_pickle.loads(dask_pickle.dumps(task))

    assert restored.name == "run-trial"
    assert restored.retries == 1


def test_search_on_dask_cluster_address(
    tmp_path: Path,
    digits_npz: Path,
    dask_cluster: LocalCluster,
    mlflow_server: ServerProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment="dask-address",
        max_trials=4,
        epochs=2,
        extra=(
            'engine = "dask"\nconcurrency = 2\n\n'
            f'[dask]\naddress = "{dask_cluster.scheduler_address}"\n'
        ),
    )
    with Client(dask_cluster) as dask_client:
        worker_pids = set(dask_client.run(os.getpid).values())

    with caplog.at_level(logging.INFO):
        state = tune_flow(
            str(spec_path), tracking_uri=mlflow_server.url, return_state=True
        )
    result = state.result()

    client = MlflowClient(mlflow_server.url)
    parents, children = split_runs(experiment_runs(client, "dask-address"))
    assert [parent.info.run_id for parent in parents] == [result.parent_run_id]
    assert parents[0].info.status == "FINISHED"
    assert len(children) == 4
    assert sorted(t["run_id"] for t in result.trials) == sorted(
        child.info.run_id for child in children
    )
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == result.parent_run_id
        assert child.info.status == "FINISHED"
        assert_complete_series(client, child, epochs=2)
    assert {worker_pid(child) for child in children} == worker_pids
    assert len(worker_pids) == 2
    assert result.registered_model is not None

    flow_run_id = state.state_details.flow_run_id
    task_runs = trial_task_runs(flow_run_id)
    assert sorted(task_runs) == ["trial-0", "trial-1", "trial-2", "trial-3"]
    assert {run.state_type.value for run in task_runs.values()} == {"COMPLETED"}
    prefect_logs = flow_run_logs(flow_run_id, expected=4)
    assert len([m for m in prefect_logs if " finished with " in m]) == 4

    with Client(dask_cluster) as dask_client:
        cached = dask_client.run(
            lambda: len(importlib.import_module("tasks.data")._datasets)
        )
    assert sorted(cached.values()) == [1, 1]

    server_log = mlflow_server.log_path.read_text(encoding="utf-8", errors="replace")
    flow_log = "\n".join(record.getMessage() for record in caplog.records)
    for text in STORE_ERRORS:
        assert text not in server_log
        assert text not in flow_log
        assert not [message for message in prefect_logs if text in message]


def test_search_on_local_dask_cluster(
    tmp_path: Path, digits_npz: Path, mlflow_server: ServerProcess
) -> None:
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment="dask-local",
        max_trials=2,
        epochs=1,
        extra='engine = "dask"\nconcurrency = 2',
    )

    state = tune_flow(str(spec_path), tracking_uri=mlflow_server.url, return_state=True)
    result = state.result()

    client = MlflowClient(mlflow_server.url)
    _, children = split_runs(experiment_runs(client, "dask-local"))
    assert [t["status"] for t in result.trials] == ["COMPLETED", "COMPLETED"]
    assert len(children) == 2
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == result.parent_run_id
        assert_complete_series(client, child, epochs=1)
    pids = {worker_pid(child) for child in children}
    assert len(pids) == 2
    assert os.getpid() not in pids
    # The flow stops the cluster it started, and with it the worker processes.
    assert not [pid for pid in pids if psutil.pid_exists(pid)]
    prefect_logs = flow_run_logs(state.state_details.flow_run_id, expected=2)
    assert len([m for m in prefect_logs if " finished with " in m]) == 2


def test_dask_rejects_sqlite_store(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    spec_path = write_tiny_spec(
        tmp_path, digits_npz, experiment="dask-sqlite", extra='engine = "dask"'
    )

    with pytest.raises(SpecError) as caught:
        tune_flow(str(spec_path), tracking_uri=tracking_uri)

    message = str(caught.value)
    assert "mlflow.tracking_uri: engine = 'dask' logs the trials" in message
    assert f"Received: tracking_uri={tracking_uri!r}" in message
    assert (
        f"`{mlflow_command()} server --backend-store-uri {tracking_uri} --host "
        "127.0.0.1 --port 5000`" in message
    )
    assert "[mlflow] tracking_uri = 'http://127.0.0.1:5000'" in message
    assert "MLFLOW_TRACKING_URI=http://127.0.0.1:5000" in message
    assert MlflowClient(tracking_uri).get_experiment_by_name("dask-sqlite") is None


def test_dask_rejects_file_store(tmp_path: Path, digits_npz: Path) -> None:
    store = tmp_path / "mlruns"
    spec_path = write_tiny_spec(
        tmp_path, digits_npz, experiment="dask-files", extra='engine = "dask"'
    )

    with pytest.raises(SpecError) as caught:
        tune_flow(str(spec_path), tracking_uri=store.as_uri())

    message = str(caught.value)
    database = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow_cli = mlflow_command()
    assert (
        f"`{mlflow_cli} server --backend-store-uri {database} --host 127.0.0.1 "
        "--port 5000`" in message
    )
    assert (
        f"`{mlflow_cli} migrate-filestore --source {store} --target {database}`"
        in message
    )
    assert not store.exists()


@pytest.fixture
def restore_environment() -> Iterator[None]:
    """Undo the environment defaults that the CLI sets in this process."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def dask_spec(address: str) -> TuningSpec:
    return parse_spec(
        {
            "hypermodel": "hypermodels:build_tiny_model",
            "engine": "dask",
            "dask": {"address": address},
        }
    )


@pytest.mark.usefixtures("restore_environment")
def test_cli_rejects_unreachable_scheduler(
    tmp_path: Path, digits_npz: Path, mlflow_server: ServerProcess
) -> None:
    # Nothing listens on a free port of 127.0.0.1, so each connection attempt
    # is refused until the check's time limit ends.
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment="dask-unreachable",
        extra=f'engine = "dask"\n\n[dask]\naddress = "{address}"',
    )
    runner = CliRunner()

    for command in (["validate"], ["tune"]):
        outcome = runner.invoke(
            app,
            [*command, str(spec_path)],
            env={"MLFLOW_TRACKING_URI": mlflow_server.url},
        )

        assert outcome.exit_code == EXIT_INVALID_SPEC, outcome.output
        assert outcome.output.count("dask.address: ") == 1, outcome.output
        assert f"could not connect to a Dask scheduler at {address}" in outcome.output
        assert "ConnectionRefusedError" in outcome.output
        assert f"Received: address='{address}'." in outcome.output
        assert f"`dask scheduler --host 127.0.0.1 --port {port}`" in outcome.output
        assert "remove address from [dask]" in outcome.output
        assert "[dask] n_workers" in outcome.output
        assert "Prefect" not in outcome.output, "Prefect's server did not start"
    experiment = MlflowClient(mlflow_server.url).get_experiment_by_name(
        "dask-unreachable"
    )
    assert experiment is None, "tune created nothing in MLflow"


@pytest.mark.usefixtures("restore_environment")
def test_cli_rejects_malformed_address(
    tmp_path: Path, digits_npz: Path, mlflow_server: ServerProcess
) -> None:
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        extra='engine = "dask"\n\n[dask]\naddress = "not an address"',
    )

    outcome = CliRunner().invoke(
        app,
        ["validate", str(spec_path)],
        env={"MLFLOW_TRACKING_URI": mlflow_server.url},
    )

    assert outcome.exit_code == EXIT_INVALID_SPEC, outcome.output
    assert "dask.address: must be a Dask scheduler address" in outcome.output
    assert "Received: address='not an address'." in outcome.output
    assert "e.g. 'tcp://127.0.0.1:8786', or remove address" in outcome.output


@pytest.mark.usefixtures("restore_environment")
def test_cli_accepts_running_scheduler(
    tmp_path: Path,
    digits_npz: Path,
    dask_cluster: LocalCluster,
    mlflow_server: ServerProcess,
) -> None:
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        extra=(
            'engine = "dask"\n\n'
            f'[dask]\naddress = "{dask_cluster.scheduler_address}"'
        ),
    )

    outcome = CliRunner().invoke(
        app,
        ["validate", str(spec_path)],
        env={"MLFLOW_TRACKING_URI": mlflow_server.url},
    )

    assert outcome.exit_code == 0, outcome.output
    assert "is valid" in outcome.output


def test_scheduler_check_rejects_worker(dask_cluster: LocalCluster) -> None:
    worker_address = next(iter(dask_cluster.scheduler_info["workers"]))

    with pytest.raises(SpecError) as caught:
        check_scheduler(dask_spec(worker_address), CHECK_TIMEOUT_SECONDS)

    message = str(caught.value)
    assert f"the server at {worker_address} replied as a Dask Worker" in message
    assert f"Received: address='{worker_address}'." in message


def test_scheduler_check_rejects_silent_server() -> None:
    # The socket accepts connections into its backlog but never replies.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"

        with pytest.raises(SpecError) as caught:
            check_scheduler(dask_spec(address), CHECK_TIMEOUT_SECONDS)

    message = str(caught.value)
    assert (
        f"the server at {address} accepted the connection but did not reply as a "
        f"Dask scheduler within {CHECK_TIMEOUT_SECONDS:g} s" in message
    )


def test_scheduler_check_skips_local_cluster() -> None:
    spec = parse_spec(
        {"hypermodel": "hypermodels:build_tiny_model", "engine": "dask"}
    )

    check_scheduler(spec, CHECK_TIMEOUT_SECONDS)


def test_local_cluster_workers_ignore_sigint() -> None:
    spec = parse_spec(
        {
            "hypermodel": "hypermodels:build_tiny_model",
            "engine": "dask",
            "concurrency": 2,
        }
    )

    with dask_task_runner(spec) as runner:
        client = runner.client
        pids = client.run(os.getpid)
        ignored = [sigint_ignored(pid) for pid in pids.values()]
        for pid in pids.values():
            os.kill(pid, signal.SIGINT)
        pids_after_sigint = client.run(os.getpid)

    assert len(pids) == 2
    assert ignored == [True, True]
    assert pids_after_sigint == pids, "the same workers answer after the SIGINT"


def sigint_ignored(pid: int) -> bool:
    """Return whether a Linux process ignores SIGINT, from its SigIgn mask."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    mask = next(line for line in status.splitlines() if line.startswith("SigIgn:"))
    return bool(int(mask.split()[1], 16) & (1 << (signal.SIGINT - 1)))
