"""End-to-end: served deployments, a data event, retraining decisions and degradation.

A Prefect server and an MLflow tracking server run on free ports of 127.0.0.1;
`python -m deployments.serve` serves the deployments against them. The tests
run in file order, because each starts from the champion the previous left:

1. a tuning run by hand trains a first champion on shuffled labels (weak);
2. a data event with clean digits, emitted by a short-lived process as an
   ingestion job would, promotes a better challenger;
3. the same event again, from `tuneflow data-updated`, registers nothing;
4. data whose tuning part has shuffled labels yields a worse challenger,
   which is registered but not promoted;
5. the monitoring flow finds the champion below its threshold and emits the
   degradation event, which starts a retraining run;
6. a parameter that cannot be converted is rejected before any run starts;
7. `prefect deploy --all` applies deployments/prefect.yaml to a process pool.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import numpy as np
import pytest
from mlflow import MlflowClient
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL, temporary_settings
from sklearn.datasets import load_digits

from tasks.data import split_arrays
from server_processes import REPO_ROOT, VENV_BIN, start_process, stop_process

MODEL_NAME = "digits-retraining"
EXPERIMENT = "retraining-test"
TUNE_DEPLOYMENT = "tune-with-budget/tune-daily"
RETRAIN_DEPLOYMENT = "retrain/retrain-on-event"
MONITOR_DEPLOYMENT = "monitor/monitor-daily"
HOLDOUT_FRACTION = 0.2
HOLDOUT_SEED = 0
RUN_TIMEOUT_SECONDS = 240.0

BUILD_FUNCTION = '''
import keras


def build_model(hp):
    model = keras.Sequential([
        keras.Input(shape=(8, 8)),
        keras.layers.Flatten(),
        keras.layers.Dense(hp.Int("units", 32, 64, step=32, default=32), activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    learning_rate = hp.Choice("learning_rate", values=[0.01, 0.005])
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
'''

SPEC = """
hypermodel = "digits_model:build_model"
objective = "val_accuracy"
max_trials = 1
seed = 3

[data]
path = "noisy.npz"
validation_split = 0.25

[fit]
epochs = 4
batch_size = 16

[mlflow]
experiment = "retraining-test"
registered_model_name = "digits-retraining"
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write the build function, the spec and three data files of disjoint digits.

    noisy.npz has shuffled labels; fresh.npz is clean; worse.npz is clean in
    its held-out part and shuffled in the part a retraining tunes on.
    """
    folder = tmp_path_factory.mktemp("workspace")
    (folder / "digits_model.py").write_text(BUILD_FUNCTION)
    (folder / "spec.toml").write_text(SPEC)

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(11)
    order = rng.permutation(len(x))
    noisy, fresh, worse = order[:300], order[300:700], order[700:1100]

    np.savez(folder / "noisy.npz", x=x[noisy], y=rng.permutation(y[noisy]))
    np.savez(folder / "fresh.npz", x=x[fresh], y=y[fresh])

    # The retraining flow holds out the same samples: same count, fraction and seed.
    positions = np.arange(len(worse))
    tuning_positions, _, _, _ = split_arrays(positions, positions, HOLDOUT_FRACTION, HOLDOUT_SEED)
    worse_labels = y[worse].copy()
    worse_labels[tuning_positions] = rng.permutation(worse_labels[tuning_positions])
    np.savez(folder / "worse.npz", x=x[worse], y=worse_labels)
    return folder


@contextmanager
def prefect_client(api_url: str) -> Iterator[SyncPrefectClient]:
    """Yield a client of the test's Prefect server, with that server as the API URL."""
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        with get_client(sync_client=True) as client:
            yield client


@pytest.fixture(scope="module")
def served(
    workspace: Path,
    prefect_api_url: str,
    mlflow_tracking_uri: str,
    server_environment: dict[str, str],
) -> Iterator[dict[str, str]]:
    """Serve the deployments in a subprocess; return their ids by name."""
    env = {
        **server_environment,
        "PREFECT_API_URL": prefect_api_url,
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    command = [
        str(VENV_BIN / "python"), "-m", "deployments.serve",
        "--spec", str(workspace / "spec.toml"),
        "--model", MODEL_NAME,
        "--data", str(workspace / "fresh.npz"),
        "--max-trials", "1",
        "--retrain-max-trials", "2",
        "--tune", "learning_rate",
        "--margin", "0.05",
        "--threshold", "0.99",
        "--tracking-uri", mlflow_tracking_uri,
    ]
    log_path = workspace / "serve.log"
    process = start_process(command, env, log_path)
    try:
        ids = wait_for_deployments(prefect_api_url, process, log_path)
        yield ids
    finally:
        stop_process(process)


def wait_for_deployments(
    api_url: str, process: subprocess.Popen[bytes], log_path: Path
) -> dict[str, str]:
    """Wait until the serve process has created all three deployments."""
    names = (TUNE_DEPLOYMENT, RETRAIN_DEPLOYMENT, MONITOR_DEPLOYMENT)
    deadline = time.monotonic() + 120
    with prefect_client(api_url) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log_tail = log_path.read_text()[-3000:]
                pytest.fail(f"serve exited with {process.returncode}:\n{log_tail}")
            try:
                return {name: str(client.read_deployment_by_name(name).id) for name in names}
            except Exception:
                time.sleep(1)
    log_tail = log_path.read_text()[-3000:]
    pytest.fail(f"The deployments did not appear within 120 s:\n{log_tail}")


def flow_run_ids(api_url: str, deployment_id: str) -> set[UUID]:
    with prefect_client(api_url) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[UUID(deployment_id)]))
        )
    return {run.id for run in runs}


def wait_for_events(api_url: str, name: str, timeout_seconds: float = 60.0) -> list[Any]:
    """Return the stored events named `name`, polling until one is stored.

    The server stores received events in batches, a few seconds after they arrive.
    """
    deadline = time.monotonic() + timeout_seconds
    while True:
        events = httpx.post(
            f"{api_url}/events/filter",
            json={"filter": {"event": {"name": [name]}}, "limit": 10},
            timeout=10,
        ).json()["events"]
        if events or time.monotonic() > deadline:
            return events
        time.sleep(1.0)


def wait_for_new_run(api_url: str, deployment_id: str, known: set[UUID]) -> FlowRun:
    """Wait for a flow run of the deployment not in `known` to reach a final state."""
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    with prefect_client(api_url) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(
                    id=DeploymentFilterId(any_=[UUID(deployment_id)])
                )
            )
            new = [run for run in runs if run.id not in known]
            if new and new[0].state is not None and new[0].state.is_final():
                return new[0]
            time.sleep(2)
    pytest.fail(
        f"No new run of deployment {deployment_id} finished within {RUN_TIMEOUT_SECONDS} s."
    )


def emit_data_event(path: Path, env: dict[str, str]) -> None:
    """Emit the new-data event from a short-lived process, as an ingestion job would."""
    script = (
        "from deployments.events import announce_data_file; "
        f"announce_data_file({str(path)!r})"
    )
    completed = subprocess.run(
        [str(VENV_BIN / "python"), "-c", script],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def run_data_updated_command(path: Path, env: dict[str, str]) -> str:
    """Run `tuneflow data-updated PATH`, the product's command for new data."""
    completed = subprocess.run(
        [str(VENV_BIN / "tuneflow"), "data-updated", str(path)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def latest_retraining_run(client: MlflowClient) -> Any:
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.`tuneflow.kind` = 'retraining'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0]


def version_numbers(client: MlflowClient) -> set[str]:
    return {v.version for v in client.search_model_versions(f"name = '{MODEL_NAME}'")}


@pytest.fixture(scope="module")
def event_environment(server_environment: dict[str, str], prefect_api_url: str) -> dict[str, str]:
    return {**server_environment, "PREFECT_API_URL": prefect_api_url}


def test_manual_tuning_run_registers_champion(
    served: dict[str, str], prefect_api_url: str, mlflow_tracking_uri: str
) -> None:
    with temporary_settings(updates={PREFECT_API_URL: prefect_api_url}):
        flow_run = run_deployment(TUNE_DEPLOYMENT, timeout=RUN_TIMEOUT_SECONDS)

    assert flow_run.state is not None
    assert flow_run.state.is_completed(), flow_run.state
    champion = MlflowClient(mlflow_tracking_uri).get_model_version_by_alias(MODEL_NAME, "champion")
    assert champion.version == "1"


def test_data_event_promotes_better_challenger(
    served: dict[str, str],
    prefect_api_url: str,
    mlflow_tracking_uri: str,
    workspace: Path,
    event_environment: dict[str, str],
) -> None:
    client = MlflowClient(mlflow_tracking_uri)
    known = flow_run_ids(prefect_api_url, served[RETRAIN_DEPLOYMENT])

    emit_data_event(workspace / "fresh.npz", event_environment)
    flow_run = wait_for_new_run(prefect_api_url, served[RETRAIN_DEPLOYMENT], known)

    assert flow_run.state is not None and flow_run.state.is_completed(), flow_run.state
    assert flow_run.parameters["data_path"] == str(workspace / "fresh.npz")
    assert flow_run.parameters["max_trials"] == 2
    assert flow_run.parameters["cause"] == {"event": "tuneflow.data.updated", "num_samples": 400}
    assert isinstance(flow_run.parameters["cause"]["num_samples"], int)
    run = latest_retraining_run(client)
    assert run.data.tags["tuneflow.cause.num_samples"] == "400"
    assert run.data.tags["tuneflow.decision"] == "promoted", run.data.tags["tuneflow.reason"]
    assert run.data.metrics["challenger_score"] > run.data.metrics["champion_score"] + 0.05
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert champion.version == "2"
    assert champion.tags["tuneflow.decision"] == "promoted"
    assert "tuneflow.reason" in champion.tags
    previous = client.get_model_version(MODEL_NAME, "1")
    assert previous.tags["tuneflow.decision.last_challenge"] == "promoted"
    assert float(previous.tags["tuneflow.champion_score.last_challenge"]) == pytest.approx(
        run.data.metrics["champion_score"]
    )


def test_repeated_data_event_registers_nothing(
    served: dict[str, str],
    prefect_api_url: str,
    mlflow_tracking_uri: str,
    workspace: Path,
    event_environment: dict[str, str],
) -> None:
    client = MlflowClient(mlflow_tracking_uri)
    versions_before = version_numbers(client)
    known = flow_run_ids(prefect_api_url, served[RETRAIN_DEPLOYMENT])

    output = run_data_updated_command(workspace / "fresh.npz", event_environment)
    flow_run = wait_for_new_run(prefect_api_url, served[RETRAIN_DEPLOYMENT], known)

    assert "Sent event tuneflow.data.updated" in output
    assert flow_run.state is not None and flow_run.state.is_completed(), flow_run.state
    assert version_numbers(client) == versions_before
    run = latest_retraining_run(client)
    assert run.data.tags["tuneflow.decision"] == "skipped"
    assert "already handled" in run.data.tags["tuneflow.reason"]
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == "2"


def test_worse_challenger_is_not_promoted(
    served: dict[str, str],
    prefect_api_url: str,
    mlflow_tracking_uri: str,
    workspace: Path,
    event_environment: dict[str, str],
) -> None:
    client = MlflowClient(mlflow_tracking_uri)
    known = flow_run_ids(prefect_api_url, served[RETRAIN_DEPLOYMENT])

    emit_data_event(workspace / "worse.npz", event_environment)
    flow_run = wait_for_new_run(prefect_api_url, served[RETRAIN_DEPLOYMENT], known)

    assert flow_run.state is not None and flow_run.state.is_completed(), flow_run.state
    run = latest_retraining_run(client)
    assert run.data.tags["tuneflow.decision"] == "rejected", run.data.tags["tuneflow.reason"]
    assert run.data.metrics["challenger_score"] < run.data.metrics["champion_score"]
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == "2"
    rejected = client.get_model_version(MODEL_NAME, run.data.tags["tuneflow.challenger_version"])
    assert rejected.tags["tuneflow.decision"] == "rejected"
    assert rejected.aliases == []


def test_degradation_event_starts_retraining(
    served: dict[str, str], prefect_api_url: str, mlflow_tracking_uri: str, workspace: Path
) -> None:
    known = flow_run_ids(prefect_api_url, served[RETRAIN_DEPLOYMENT])

    with temporary_settings(updates={PREFECT_API_URL: prefect_api_url}):
        monitor_run = run_deployment(MONITOR_DEPLOYMENT, timeout=RUN_TIMEOUT_SECONDS)

    assert monitor_run.state is not None and monitor_run.state.is_completed(), monitor_run.state
    events = wait_for_events(prefect_api_url, "tuneflow.model.degraded")
    assert len(events) == 1
    payload = events[0]["payload"]
    assert payload["registered_model_name"] == MODEL_NAME
    assert payload["score"] < payload["threshold"] == 0.99
    champion = MlflowClient(mlflow_tracking_uri).get_model_version_by_alias(MODEL_NAME, "champion")
    assert champion.tags["tuneflow.monitoring.degraded"] == "true"

    retrain_run = wait_for_new_run(prefect_api_url, served[RETRAIN_DEPLOYMENT], known)
    assert retrain_run.parameters["data_path"] == str(workspace / "fresh.npz")
    cause = retrain_run.parameters["cause"]
    assert cause["event"] == "tuneflow.model.degraded"
    assert isinstance(cause["score"], float)
    assert cause["score"] == payload["score"]
    assert retrain_run.state is not None and retrain_run.state.is_completed(), retrain_run.state


def test_unconvertible_parameter_rejected_before_run(
    served: dict[str, str], prefect_api_url: str, mlflow_tracking_uri: str, workspace: Path
) -> None:
    client = MlflowClient(mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs_before = len(client.search_runs([experiment.experiment_id], max_results=1000))

    with temporary_settings(updates={PREFECT_API_URL: prefect_api_url}):
        with pytest.raises(Exception, match="max_trials"):
            run_deployment(
                RETRAIN_DEPLOYMENT,
                parameters={"data_path": str(workspace / "fresh.npz"), "max_trials": "many"},
                timeout=0,
            )

    assert len(client.search_runs([experiment.experiment_id], max_results=1000)) == runs_before


def test_prefect_yaml_deploys_to_process_pool(
    served: dict[str, str], prefect_api_url: str, server_environment: dict[str, str]
) -> None:
    # Runs last: it replaces the served deployments of the same names.
    env = {**server_environment, "PREFECT_API_URL": prefect_api_url}
    prefect = str(VENV_BIN / "prefect")
    commands = [
        [prefect, "work-pool", "create", "tuneflow-process", "--type", "process"],
        [prefect, "--no-prompt", "deploy", "--all", "--prefect-file", "deployments/prefect.yaml"],
    ]
    for command in commands:
        completed = subprocess.run(
            command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
        )
        assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]

    with prefect_client(prefect_api_url) as client:
        retrain = client.read_deployment_by_name(RETRAIN_DEPLOYMENT)
        tune = client.read_deployment_by_name(TUNE_DEPLOYMENT)
        automations = client.read_automations_by_name("retrain-digits-dense-on-new-data")

    assert retrain.work_pool_name == "tuneflow-process"
    assert retrain.parameters["registered_model_name"] == "digits-dense"
    assert retrain.parameters["policy"]["holdout_fraction"] == 0.2
    assert retrain.global_concurrency_limit is not None
    assert retrain.global_concurrency_limit.limit == 1
    schedule = tune.schedules[0].schedule
    assert (schedule.cron, schedule.timezone) == ("0 4 * * *", "Europe/Berlin")
    assert len(automations) == 1
    parameters = automations[0].actions[0].parameters
    assert parameters["data_path"] == "{{ event.payload.data_path }}"
