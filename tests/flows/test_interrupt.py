"""Ctrl-C during `tuneflow tune`: the runs end KILLED, and the search resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from distributed import Client, Event, LocalCluster
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus, Run
from pipeline_runs import experiment_runs, split_runs
from pipeline_specs import write_tiny_spec
from server_processes import ServerProcess

from tasks.dask_stop import stop_event_name
from tasks.project import PROJECTS_FOLDER

REPOSITORY = Path(__file__).resolve().parents[2]
TESTS = REPOSITORY / "tests"

# SlowFitModel trains these units slowly, 0.1 s a batch, and the others fast.
SLOW_UNITS = 16
# The time to start Prefect's temporary server and TensorFlow on a busy machine.
START_TIMEOUT_SECONDS = 240.0
# The exit took about 1 s on 2 busy CPU cores. The limit leaves room for a slow CI.
EXIT_LIMIT_SECONDS = 20.0
# A slow batch takes 0.1 s and the flow's main thread wakes every 0.25 s, so
# training must stop within a few batches of the SIGINT.
MAX_BATCHES_AFTER_SIGINT = 10
# The slow trials on Dask workers, by units.
DASK_SLOW_UNITS = "16,24"
# The flow's process sets the stop event within 0.25 s of the SIGINT, and a
# worker reads it every 0.5 s, so a slow trial stops within about 10 batches.
# The limit leaves room for a busy machine.
MAX_DASK_BATCHES_AFTER_SIGINT = 30

GRID_OVER_UNITS = """oracle = "grid"
tune_new_entries = false
project_name = "interrupted"

[[hyperparameters]]
name = "units"
type = "Int"
min_value = 8
max_value = 24
step = 8
"""


def write_spec(tmp_path: Path, digits_npz: Path, experiment: str) -> Path:
    """Write a grid search whose trial 0 trains fast and trial 1 slowly."""
    return write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment=experiment,
        max_trials=3,
        epochs=100,
        hypermodel="hypermodels:SlowFitModel",
        extra=GRID_OVER_UNITS,
    )


def cli_environment(
    tmp_path: Path, batch_log: Path, prefect_api_url: str | None
) -> dict[str, str]:
    env = dict(
        os.environ,
        PYTHONPATH=f"{REPOSITORY}{os.pathsep}{TESTS}",
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        TUNEFLOW_TEST_BATCH_LOG=str(batch_log),
        TUNEFLOW_TEST_SLOW_UNITS=str(SLOW_UNITS),
    )
    env.pop("PREFECT_API_URL", None)
    env.pop("TUNEFLOW_TEST_HANG_UNITS", None)
    if prefect_api_url is not None:
        env["PREFECT_API_URL"] = prefect_api_url
    return env


def start_cli(
    spec_path: Path, tracking_uri: str, env: dict[str, str], stderr_path: Path
) -> subprocess.Popen[str]:
    """Start `tuneflow tune` in a process group of its own, as a shell job is."""
    command = [sys.executable, "-m", "flows.cli", "tune", str(spec_path)]
    return subprocess.Popen(
        [*command, "--tracking-uri", tracking_uri],
        env=env,
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=stderr_path.open("w"),
        text=True,
        start_new_session=True,
    )


def read_batch_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def wait_for_slow_batch(process: subprocess.Popen[str], batch_log: Path) -> None:
    """Wait until the slow trial has trained a batch, so that it is mid-training."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        entries = read_batch_log(batch_log)
        if any(e["event"] == "batch" and e["units"] == SLOW_UNITS for e in entries):
            return
        assert process.poll() is None, f"tuneflow exited with {process.returncode}"
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"The slow trial did not train within {START_TIMEOUT_SECONDS} s.")


def wait_for_exit(process: subprocess.Popen[str], sigint_time: float) -> float:
    """Wait for the process to exit, and return the seconds since the SIGINT."""
    try:
        process.wait(timeout=EXIT_LIMIT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"tuneflow did not exit within {EXIT_LIMIT_SECONDS} s of SIGINT.")
    return time.time() - sigint_time


def runs_by_name(
    tracking_uri: str, experiment: str
) -> tuple[list[Run], dict[str, Run]]:
    """Return the search runs, and the trial runs by name."""
    client = MlflowClient(tracking_uri)
    parents, children = split_runs(experiment_runs(client, experiment))
    return parents, {child.info.run_name: child for child in children}


def metric_times(client: MlflowClient, run: Run) -> list[float]:
    """Return the time of every metric value the run logged, in seconds."""
    return [
        metric.timestamp / 1000
        for name in run.data.metrics
        for metric in client.get_metric_history(run.info.run_id, name)
    ]


def test_sigint_ends_runs_killed(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    batch_log = tmp_path / "batches.jsonl"
    spec_path = write_spec(tmp_path, digits_npz, "sigint")
    # No PREFECT_API_URL, so the command starts Prefect's temporary server, and
    # the SIGINT reaches the whole process group, as a terminal's Ctrl-C does.
    env = cli_environment(tmp_path, batch_log, prefect_api_url=None)
    process = start_cli(spec_path, tracking_uri, env, tmp_path / "stderr.txt")

    wait_for_slow_batch(process, batch_log)
    sigint_time = time.time()
    os.killpg(process.pid, signal.SIGINT)
    exit_seconds = wait_for_exit(process, sigint_time)

    stdout = process.stdout.read() if process.stdout else ""
    stderr = (tmp_path / "stderr.txt").read_text()
    assert process.returncode == 130, stderr[-3000:]
    assert exit_seconds < EXIT_LIMIT_SECONDS
    assert "Trial 0: val_accuracy=" in stdout
    assert stderr.count("Interrupted: stopping the running trials") == 1
    assert "finished trial(s) kept; trial numbers stopped while running: 1." in stderr
    assert "Resume the search, running the stopped trials again, with:" in stderr
    # The command names the folder: the default store and the saved search are there.
    assert f"cd {REPOSITORY} && " in stderr
    assert "Traceback" not in stderr
    # The stopped trial's task run ends Cancelled, which Prefect logs as an error.
    assert "Finished in state Cancelled" not in stderr

    client = MlflowClient(tracking_uri)
    parents, trials = runs_by_name(tracking_uri, "sigint")
    assert len(parents) == 1
    search = parents[0]
    assert search.info.status == "KILLED"
    assert search.data.tags["tuneflow.status"] == "INTERRUPTED"
    assert "Interrupted by the user" in search.data.tags["tuneflow.error"]
    assert sorted(trials) == ["trial-0", "trial-1"], "no trial started after SIGINT"

    finished, stopped = trials["trial-0"], trials["trial-1"]
    assert finished.info.status == "FINISHED"
    assert "tuneflow.error" not in finished.data.tags
    project = tmp_path / PROJECTS_FOLDER / "interrupted"
    saved = json.loads((project / "search.json").read_text())
    [saved_trial] = saved["trials"].values()
    assert saved_trial["run_id"] == finished.info.run_id
    model = client.get_logged_model(saved_trial["model_uri"].removeprefix("models:/"))
    assert model.status == LoggedModelStatus.READY
    assert stopped.info.status == "KILLED"
    assert stopped.data.tags["tuneflow.status"] == "INTERRUPTED"
    assert "Interrupted by the user" in stopped.data.tags["tuneflow.error"]

    # Nothing trained or logged after the stopped trial's run ended.
    stopped_at = stopped.info.end_time / 1000
    slow_batches = [
        e["time"]
        for e in read_batch_log(batch_log)
        if e["event"] == "batch" and e["units"] == SLOW_UNITS
    ]
    assert max(slow_batches) <= stopped_at
    assert sum(t > sigint_time for t in slow_batches) <= MAX_BATCHES_AFTER_SIGINT
    assert max(metric_times(client, stopped), default=0.0) <= stopped_at
    fits = [e["units"] for e in read_batch_log(batch_log) if e["event"] == "fit"]
    assert fits == [8, SLOW_UNITS]

    # The saved search keeps trial 0 and leaves trial 1 running, to run again.
    oracle_state = json.loads((project / "oracle.json").read_text())
    statuses = {t["number"]: t["status"] for t in oracle_state["trials"]}
    assert statuses == {0: "COMPLETED", 1: "RUNNING"}
    assert saved_trial["number"] == 0


def test_sigterm_stops_search_and_server(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    batch_log = tmp_path / "batches.jsonl"
    spec_path = write_spec(tmp_path, digits_npz, "sigterm")
    # No PREFECT_API_URL, so the command starts Prefect's temporary server. The
    # SIGTERM goes to the command's process alone, as `kill PID` and
    # `docker stop` send it.
    env = cli_environment(tmp_path, batch_log, prefect_api_url=None)
    process = start_cli(spec_path, tracking_uri, env, tmp_path / "stderr.txt")

    wait_for_slow_batch(process, batch_log)
    children = psutil.Process(process.pid).children(recursive=True)
    commands = [" ".join(child.cmdline()) for child in children]
    assert any("uvicorn" in command for command in commands), commands
    sigterm_time = time.time()
    process.send_signal(signal.SIGTERM)
    exit_seconds = wait_for_exit(process, sigterm_time)

    stderr = (tmp_path / "stderr.txt").read_text()
    assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert exit_seconds < EXIT_LIMIT_SECONDS
    assert stderr.count("Terminated (SIGTERM): stopping the running trials") == 1
    assert "trial numbers stopped while running: 1." in stderr
    assert "Traceback" not in stderr
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == [], "the temporary Prefect server and the workers exit too"

    parents, trials = runs_by_name(tracking_uri, "sigterm")
    assert [parent.info.status for parent in parents] == ["KILLED"]
    assert parents[0].data.tags["tuneflow.status"] == "INTERRUPTED"
    assert trials["trial-0"].info.status == "FINISHED"
    stopped = trials["trial-1"]
    assert stopped.info.status == "KILLED"
    assert stopped.data.tags["tuneflow.status"] == "INTERRUPTED"
    stopped_at = stopped.info.end_time / 1000
    slow_batches = [
        e["time"]
        for e in read_batch_log(batch_log)
        if e["event"] == "batch" and e["units"] == SLOW_UNITS
    ]
    assert max(slow_batches) <= stopped_at
    assert sum(t > sigterm_time for t in slow_batches) <= MAX_BATCHES_AFTER_SIGINT


@pytest.mark.usefixtures("prefect_backend")
def test_closed_pipe_then_resume(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    from prefect.settings import get_current_settings

    batch_log = tmp_path / "batches.jsonl"
    spec_path = write_spec(tmp_path, digits_npz, "closed-pipe")
    api_url = str(get_current_settings().api.url)
    env = cli_environment(tmp_path, batch_log, prefect_api_url=api_url)
    process = start_cli(spec_path, tracking_uri, env, tmp_path / "stderr.txt")

    wait_for_slow_batch(process, batch_log)
    # The reader of stdout exits, as `tee` does at a terminal's Ctrl-C, and
    # the SIGINT goes to tuneflow alone, as `kill -INT` sends it.
    assert process.stdout is not None
    process.stdout.close()
    sigint_time = time.time()
    process.send_signal(signal.SIGINT)
    wait_for_exit(process, sigint_time)

    stderr = (tmp_path / "stderr.txt").read_text()
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    assert "trial numbers stopped while running: 1." in stderr
    parents, trials = runs_by_name(tracking_uri, "closed-pipe")
    assert [p.info.status for p in parents] == ["KILLED"]
    assert trials["trial-0"].info.status == "FINISHED"
    assert trials["trial-1"].info.status == "KILLED"

    env.pop("TUNEFLOW_TEST_SLOW_UNITS")
    command = [sys.executable, "-m", "flows.cli", "tune", str(spec_path)]
    resumed = subprocess.run(
        [*command, "--tracking-uri", tracking_uri],
        env=env,
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming a saved search: 1 trial(s) already finished." in resumed.stdout
    fits = [e["units"] for e in read_batch_log(batch_log) if e["event"] == "fit"]
    assert fits == [8, SLOW_UNITS, SLOW_UNITS, 24], "trial 1 runs again, trial 0 not"
    parents, _ = runs_by_name(tracking_uri, "closed-pipe")
    by_status = {p.info.status: p for p in parents}
    assert sorted(by_status) == ["FINISHED", "KILLED"]
    new_search = by_status["FINISHED"]
    old_search = by_status["KILLED"]
    assert new_search.data.tags["tuneflow.resumed_from"] == old_search.info.run_id
    client = MlflowClient(tracking_uri)
    children = client.search_runs(
        [new_search.info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{new_search.info.run_id}'",
    )
    assert sorted(c.info.run_name for c in children) == ["trial-1", "trial-2"]
    assert {c.info.status for c in children} == {"FINISHED"}


@pytest.fixture
def slow_dask_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """Start 2 Dask worker processes that train DASK_SLOW_UNITS slowly.

    The workers are children of the test's process, not of tuneflow's, so a
    signal sent to tuneflow does not reach them. They log their batches to
    `batches.jsonl` in the test's folder.
    """
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        env={
            "TUNEFLOW_TEST_BATCH_LOG": str(tmp_path / "batches.jsonl"),
            "TUNEFLOW_TEST_SLOW_UNITS": DASK_SLOW_UNITS,
        },
    ) as cluster:
        yield cluster


def wait_for_slow_dask_batches(
    process: subprocess.Popen[str], batch_log: Path
) -> None:
    """Wait until both slow trials have trained a batch on the Dask workers."""
    slow_units = {int(units) for units in DASK_SLOW_UNITS.split(",")}
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        entries = read_batch_log(batch_log)
        training = {e["units"] for e in entries if e["event"] == "batch"}
        if slow_units <= training:
            return
        assert process.poll() is None, f"tuneflow exited with {process.returncode}"
        time.sleep(0.1)
    process.kill()
    pytest.fail(f"The slow trials did not train within {START_TIMEOUT_SECONDS} s.")


@pytest.mark.usefixtures("prefect_backend")
def test_sigint_stops_dask_trials(
    tmp_path: Path,
    digits_npz: Path,
    mlflow_server: ServerProcess,
    slow_dask_cluster: LocalCluster,
) -> None:
    from prefect.settings import get_current_settings

    batch_log = tmp_path / "batches.jsonl"
    address = slow_dask_cluster.scheduler_address
    # Trial 0 (8 units) trains fast. Trials 1 and 2 train slowly, one on
    # each worker, trial 2 after trial 0 has finished.
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment="sigint-dask",
        max_trials=3,
        epochs=100,
        hypermodel="hypermodels:SlowFitModel",
        extra=(
            f'engine = "dask"\nconcurrency = 2\ndirectory = "{PROJECTS_FOLDER}"\n'
            f'{GRID_OVER_UNITS}\n[dask]\naddress = "{address}"\n'
        ),
    )
    api_url = str(get_current_settings().api.url)
    env = cli_environment(tmp_path, batch_log, prefect_api_url=api_url)
    process = start_cli(spec_path, mlflow_server.url, env, tmp_path / "stderr.txt")

    wait_for_slow_dask_batches(process, batch_log)
    # tuneflow alone gets the signal, as `kill -INT` sends it, so only the
    # search's stop event can reach the trials on the Dask workers.
    sigint_time = time.time()
    process.send_signal(signal.SIGINT)
    wait_for_exit(process, sigint_time)

    stderr = (tmp_path / "stderr.txt").read_text()
    assert process.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    assert "finished trial(s) kept; trial numbers stopped while running: 1, 2." in stderr
    assert process.stdout is not None
    stdout = process.stdout.read()
    # Without --verbose, MLflow prints no link per run that ends on the server.
    assert "Trial 0: val_accuracy=" in stdout
    assert "View run" not in stdout + stderr

    parents, trials = runs_by_name(mlflow_server.url, "sigint-dask")
    assert [parent.info.status for parent in parents] == ["KILLED"]
    assert parents[0].data.tags["tuneflow.status"] == "INTERRUPTED"
    assert sorted(trials) == ["trial-0", "trial-1", "trial-2"]
    assert trials["trial-0"].info.status == "FINISHED"
    for name in ("trial-1", "trial-2"):
        stopped = trials[name]
        assert stopped.info.status == "KILLED", name
        assert stopped.data.tags["tuneflow.status"] == "INTERRUPTED", name
        assert "Interrupted by the user" in stopped.data.tags["tuneflow.error"], name
    assert "RUNNING" not in {run.info.status for run in trials.values()}
    stopped_pids = {
        trials[name].data.tags["tuneflow.worker"].rsplit(":", 1)[1]
        for name in ("trial-1", "trial-2")
    }
    assert len(stopped_pids) == 2, "one stopped trial on each Dask worker"

    # Each slow trial stopped within a few batches of the signal, long before
    # the end of its 100 epochs, and trained nothing after its run ended.
    batches = [e for e in read_batch_log(batch_log) if e["event"] == "batch"]
    for units, name in zip((16, 24), ("trial-1", "trial-2"), strict=True):
        times = [e["time"] for e in batches if e["units"] == units]
        assert max(times) <= trials[name].info.end_time / 1000, name
        late = sum(t > sigint_time for t in times)
        assert late <= MAX_DASK_BATCHES_AFTER_SIGINT, (name, late)

    project = tmp_path / PROJECTS_FOLDER / "interrupted"
    oracle_state = json.loads((project / "oracle.json").read_text())
    statuses = {t["number"]: t["status"] for t in oracle_state["trials"]}
    assert statuses == {0: "COMPLETED", 1: "RUNNING", 2: "RUNNING"}
    with Client(slow_dask_cluster) as client:
        event = Event(stop_event_name(parents[0].info.run_id), client=client)
        assert not event.is_set(), "the flow removes its stop event"
