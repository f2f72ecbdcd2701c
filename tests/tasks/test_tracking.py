"""MLflow tracking of single trials, run without Prefect, on a real SQLite store."""

from __future__ import annotations

import functools
import logging
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import keras
import mlflow
import mlflow.tensorflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus, Metric
from pipeline_specs import write_tiny_spec

from tasks import tracking
from tasks.data import load_dataset, make_data_ref
from tasks.spec import FitSpec, TuningSpec, load_spec
from tasks.interrupted_runs import end_interrupted_run
from tasks.project import end_interrupted_runs
from tasks.trial_execution import TrialError, execute_trial

REPOSITORY = Path(__file__).resolve().parents[2]
OUR_CODE = (str(REPOSITORY / "tasks"), str(REPOSITORY / "flows"))
VALUES = {"units": 16, "dropout": True, "learning_rate": 0.01}


def start_parent(tracking_uri: str, experiment: str = "tracking") -> str:
    client = MlflowClient(tracking_uri)
    experiment_id = tracking.ensure_experiment(client, experiment, tracking_uri)
    return tracking.start_search_run(
        client, experiment_id, params={"max_trials": 1}, tags={}, artifacts={}
    )


@pytest.fixture
def tiny_spec(tmp_path: Path, digits_npz: Path) -> TuningSpec:
    return load_spec(write_tiny_spec(tmp_path, digits_npz, epochs=2))


def test_trial_run_records_params_metrics_model(
    tiny_spec: TuningSpec, tracking_uri: str
) -> None:
    parent_run_id = start_parent(tracking_uri)
    data_ref = make_data_ref(tiny_spec.data, tiny_spec.seed)

    result = execute_trial(0, VALUES, data_ref, tiny_spec, parent_run_id, tracking_uri)

    client = MlflowClient(tracking_uri)
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.parentRunId"] == parent_run_id
    assert run.data.tags["tuneflow.status"] == "COMPLETED"
    assert run.data.params == {name: str(value) for name, value in VALUES.items()}
    assert run.data.metrics["best_val_accuracy"] == pytest.approx(result["score"])
    steps = [m.step for m in client.get_metric_history(result["run_id"], "val_loss")]
    assert steps == [0, 1]

    model_id = result["model_uri"].removeprefix("models:/")
    logged_model = mlflow.get_logged_model(model_id)
    assert logged_model.source_run_id == result["run_id"]
    assert logged_model.experiment_id == run.info.experiment_id
    assert logged_model.tags["tuneflow.trial_number"] == "0"
    # MLflow's source and user tags, as its own model logging adds them.
    assert {"mlflow.source.name", "mlflow.source.type", "mlflow.user"} <= set(
        logged_model.tags
    )
    # The model's metrics are the run's metrics at its best epoch, once each.
    model_metrics = [(m.key, m.step) for m in logged_model.metrics]
    assert len(model_metrics) == len(set(model_metrics))
    assert {step for _, step in model_metrics} == {result["best_epoch"]}
    assert {"val_accuracy", "val_loss", "best_val_accuracy"} <= {
        key for key, _ in model_metrics
    }
    best_model_score = next(
        m.value for m in logged_model.metrics if m.key == "best_val_accuracy"
    )
    assert best_model_score == pytest.approx(result["score"])

    model = mlflow.tensorflow.load_model(result["model_uri"])
    dataset = load_dataset(data_ref)
    evaluated = model.evaluate(
        dataset.x_val, dataset.y_val, verbose=0, return_dict=True
    )
    assert evaluated["accuracy"] == pytest.approx(result["score"], abs=1e-6)


@pytest.mark.parametrize("write_interval", [0.0, 3600.0])
def test_logged_model_carries_best_epoch_metrics(
    tiny_spec: TuningSpec,
    tracking_uri: str,
    monkeypatch: pytest.MonkeyPatch,
    write_interval: float,
) -> None:
    # With interval 0, every epoch's metrics are written while training, before
    # the model exists. With 3600, they wait for the trial's last batch.
    monkeypatch.setattr(
        "tasks.trial_execution.EpochMetricsLogger",
        functools.partial(
            tracking.EpochMetricsLogger, write_interval_seconds=write_interval
        ),
    )
    parent_run_id = start_parent(tracking_uri)
    data_ref = make_data_ref(tiny_spec.data, tiny_spec.seed)

    result = execute_trial(0, VALUES, data_ref, tiny_spec, parent_run_id, tracking_uri)

    client = MlflowClient(tracking_uri)
    model_id = result["model_uri"].removeprefix("models:/")
    logged_model = client.get_logged_model(model_id)
    assert logged_model.status.to_proto() == LoggedModelStatus.READY.to_proto()
    model_metrics = {(m.key, m.step): m.value for m in logged_model.metrics}
    run_metrics = {
        (m.key, m.step): m.value
        for key in ("loss", "val_loss", "val_accuracy")
        for m in client.get_metric_history(result["run_id"], key)
    }
    best = result["best_epoch"]
    for key in ("loss", "val_loss", "val_accuracy"):
        assert model_metrics[(key, best)] == pytest.approx(run_metrics[(key, best)])
    # Each epoch's metric is in the run once, linked or not.
    steps = [m.step for m in client.get_metric_history(result["run_id"], "val_loss")]
    assert steps == [0, 1]
    outputs = client.get_run(result["run_id"]).outputs.model_outputs
    assert [(o.model_id, o.step) for o in outputs] == [(model_id, best)]


def test_trial_logging_raises_no_deprecation(
    tiny_spec: TuningSpec, tracking_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    parent_run_id = start_parent(tracking_uri)
    data_ref = make_data_ref(tiny_spec.data, tiny_spec.seed)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with caplog.at_level(logging.WARNING):
            execute_trial(1, VALUES, data_ref, tiny_spec, parent_run_id, tracking_uri)

    deprecations = [
        w
        for w in caught
        if issubclass(
            w.category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
        )
        and w.filename.startswith(OUR_CODE)
    ]
    assert deprecations == []
    deprecated_logs = [
        r for r in caplog.records if "deprecat" in r.getMessage().lower()
    ]
    assert deprecated_logs == []


def test_missing_objective_fails_run(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    spec = load_spec(
        write_tiny_spec(
            tmp_path, digits_npz, objective='{name = "val_auc", direction = "max"}'
        )
    )
    parent_run_id = start_parent(tracking_uri)
    data_ref = make_data_ref(spec.data, spec.seed)

    with pytest.raises(
        TrialError,
        match=r"Trial 0 failed .*Objective 'val_auc' is not a metric this model "
        r"reports\. "
        r"Metrics reported: \['accuracy', 'loss', 'val_accuracy', 'val_loss'\]",
    ) as caught:
        execute_trial(0, VALUES, data_ref, spec, parent_run_id, tracking_uri)

    assert caught.value.fatal
    run = MlflowClient(tracking_uri).get_run(caught.value.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["tuneflow.status"] == "FAILED"
    assert "ObjectiveNotFoundError" in run.data.tags["tuneflow.error"]


def test_compile_override_mse_trains(tracking_uri: str) -> None:
    spec = load_spec(REPOSITORY / "examples" / "compile_override.toml")
    spec = spec.model_copy(update={"fit": FitSpec(epochs=2, batch_size=64)})
    parent_run_id = start_parent(tracking_uri, "compile-override")
    data_ref = make_data_ref(spec.data, spec.seed)

    result = execute_trial(0, VALUES, data_ref, spec, parent_run_id, tracking_uri)

    client = MlflowClient(tracking_uri)
    losses = [m.value for m in client.get_metric_history(result["run_id"], "loss")]
    assert result["status"] == "COMPLETED"
    assert set(result["metrics"]) == {
        "loss",
        "sparse_categorical_crossentropy",
        "val_loss",
        "val_sparse_categorical_crossentropy",
    }
    assert losses[1] < losses[0]


def test_unfinished_runs_marked_failed(tracking_uri: str) -> None:
    client = MlflowClient(tracking_uri)
    parent_run_id = start_parent(tracking_uri)
    child_run_id, _ = tracking.start_trial_run(client, parent_run_id, 0, VALUES)

    tracking.fail_unfinished_runs(client, parent_run_id, RuntimeError("stopped"))

    assert client.get_run(child_run_id).info.status == "FAILED"
    assert client.get_run(parent_run_id).info.status == "FAILED"
    assert (
        client.get_run(parent_run_id).data.tags["tuneflow.error"]
        == "RuntimeError: stopped"
    )


def test_tracking_uri_precedence(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    default = f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"

    assert tracking.resolve_tracking_uri() == default
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////srv/env.db")
    assert tracking.resolve_tracking_uri() == "sqlite:////srv/env.db"
    assert tracking.resolve_tracking_uri(None, "sqlite:////srv/spec.db") == (
        "sqlite:////srv/spec.db"
    )
    assert tracking.resolve_tracking_uri(
        "http://127.0.0.1:5000", "sqlite:////x.db"
    ) == ("http://127.0.0.1:5000")


def test_ui_command_per_store() -> None:
    mlflow_cli = tracking.mlflow_command()
    assert tracking.ui_command("sqlite:////data/mlflow.db") == (
        f"{mlflow_cli} ui --backend-store-uri sqlite:////data/mlflow.db"
    )
    assert tracking.ui_command("/data/my runs") == (
        f"{mlflow_cli} ui --backend-store-uri '/data/my runs'"
    )
    assert tracking.ui_command("http://127.0.0.1:5000") is None


def test_mlflow_command_runs_outside_the_environment() -> None:
    # A shell where the virtual environment is not active finds no `mlflow`
    # on its PATH; the printed command names the script by its full path.
    command = f"{tracking.mlflow_command()} --version"
    finished = subprocess.run(
        ["/bin/sh", "-c", command],
        env={"PATH": "/usr/bin:/bin", "MLFLOW_DISABLE_TELEMETRY": "true"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr
    assert "version" in finished.stdout


class StopAtEpoch(keras.callbacks.Callback):
    """Raises at the start of epoch `epoch`, as a failing or stopped trial does."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == self.epoch:
            raise RuntimeError(f"stopped at epoch {epoch}")


def fit_tiny_model(callbacks: list[keras.callbacks.Callback], epochs: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = rng.normal(size=(32, 1)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=0, callbacks=callbacks)


def loss_steps(client: MlflowClient, run_id: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, "loss"))


@pytest.mark.parametrize(
    ("interval", "written_during_fit"), [(0.0, [0, 1, 2]), (3600.0, [])]
)
def test_epoch_metrics_wait_for_the_write_interval(
    tracking_uri: str, interval: float, written_during_fit: list[int]
) -> None:
    client = MlflowClient(tracking_uri)
    run_id = start_parent(tracking_uri)
    logger = tracking.EpochMetricsLogger(client, run_id, interval)

    fit_tiny_model([logger], epochs=3)

    assert loss_steps(client, run_id) == written_during_fit
    pending = logger.take_pending()
    assert sorted(m.step for m in pending if m.key == "loss") == sorted(
        {0, 1, 2} - set(written_during_fit)
    )
    assert logger.take_pending() == []


def test_epoch_metrics_written_when_training_fails(tracking_uri: str) -> None:
    client = MlflowClient(tracking_uri)
    run_id = start_parent(tracking_uri)
    logger = tracking.EpochMetricsLogger(client, run_id, write_interval_seconds=3600.0)

    with pytest.raises(RuntimeError, match="stopped at epoch 2"):
        with logger.written_if_training_fails():
            fit_tiny_model([logger, StopAtEpoch(2)], epochs=4)

    assert loss_steps(client, run_id) == [0, 1]
    assert logger.pending == []


def test_records_written_when_block_fails(tracking_uri: str) -> None:
    run_id = start_parent(tracking_uri, experiment="records")
    client = MlflowClient(tracking_uri)
    records = tracking.RunRecords(
        metrics=[Metric("val_loss", 0.5, 0, 0), Metric("val_loss", 0.4, 0, 1)]
    )

    with pytest.raises(RuntimeError, match="model upload failed"):
        with records.written_if_failing(client, run_id):
            raise RuntimeError("model upload failed")

    history = client.get_metric_history(run_id, "val_loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.5), (1, 0.4)]


def test_link_model_metrics_links_one_step() -> None:
    records = tracking.RunRecords(
        metrics=[Metric("val_loss", 0.5, 0, 0), Metric("val_loss", 0.4, 0, 1)]
    )

    records.link_model_metrics("m-123", step=1)

    assert [(m.key, m.step, m.value, m.model_id) for m in records.metrics] == [
        ("val_loss", 0, 0.5, None),
        ("val_loss", 1, 0.4, "m-123"),
    ]


def test_model_saves_reuse_keras_skip_sets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keras builds a bare `Optimizer(1.0)` each time it computes the skip set
    # of an optimizer. Once one save has computed it, later saves reuse it,
    # even after clear_session(). If this fails after a Keras upgrade, Keras
    # may have fixed its lookup, and `reusing_keras_save_skipsets` can go.
    from keras.src.optimizers.optimizer import Optimizer

    from tuner_core._session import reset_keras_session

    monkeypatch.setattr(tracking, "_save_skipsets", {})
    reference_builds: list[int] = []
    original_init = Optimizer.__init__

    def counting_init(self: Optimizer, *args: object, **kwargs: object) -> None:
        if type(self) is Optimizer:
            reference_builds.append(1)
        original_init(self, *args, **kwargs)

    monkeypatch.setattr(Optimizer, "__init__", counting_init)
    x = np.random.default_rng(0).random((8, 4)).astype("float32")
    builds_per_save = []
    for attempt in range(2):
        reset_keras_session()
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, np.zeros((8, 2)), epochs=1, verbose=0)
        reference_builds.clear()
        path = tmp_path / f"model-{attempt}.keras"
        with tracking.reusing_keras_save_skipsets():
            model.save(path)
        builds_per_save.append(len(reference_builds))
        loaded = keras.saving.load_model(path)
        np.testing.assert_allclose(
            loaded.predict(x, verbose=0), model.predict(x, verbose=0)
        )

    assert builds_per_save[0] >= 1
    assert builds_per_save[1] == 0


def end_interrupted(client: MlflowClient, run_id: str, parent_run_id: str) -> None:
    end_interrupted_run(client, run_id)


def end_at_resume(client: MlflowClient, run_id: str, parent_run_id: str) -> None:
    end_interrupted_runs(client, parent_run_id, resumed_by=None)


def end_failed_search(client: MlflowClient, run_id: str, parent_run_id: str) -> None:
    tracking.fail_unfinished_runs(client, parent_run_id, RuntimeError("disk full"))


@pytest.mark.parametrize(
    ("end", "status"),
    [
        (end_interrupted, "KILLED"),
        (end_at_resume, "KILLED"),
        (end_failed_search, "FAILED"),
    ],
)
def test_unfinished_trial_fails_its_pending_model(
    tracking_uri: str,
    end: Callable[[MlflowClient, str, str], None],
    status: str,
) -> None:
    # A trial stopped while its model was uploading leaves the model PENDING.
    client = MlflowClient(tracking_uri)
    parent_run_id = start_parent(tracking_uri, experiment="pending-models")
    run_id, experiment_id = tracking.start_trial_run(
        client, parent_run_id, 3, {"units": 16}
    )
    pending = client.create_logged_model(
        experiment_id, name="trial-3", source_run_id=run_id
    )
    other_run_id, _ = tracking.start_trial_run(client, parent_run_id, 4, {"units": 8})
    finished = client.create_logged_model(
        experiment_id, name="trial-4", source_run_id=other_run_id
    )
    client.finalize_logged_model(finished.model_id, LoggedModelStatus.READY)
    tracking.end_run(client, other_run_id, "FINISHED")

    end(client, run_id, parent_run_id)

    assert client.get_run(run_id).info.status == status
    assert client.get_logged_model(pending.model_id).status == LoggedModelStatus.FAILED
    assert client.get_logged_model(finished.model_id).status == LoggedModelStatus.READY
