"""MLflow adapter: one parent run per search and one child run per trial.

Every call names its run explicitly through `MlflowClient`. MLflow keeps the
active run per thread, so a trial task in a worker thread would silently start
a top-level run if it relied on `mlflow.start_run(nested=True)`.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import logging
import os
import re
import shlex
import shutil
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any
import urllib.error
import urllib.request
from urllib.parse import unquote, urlparse

import keras
import mlflow
import mlflow.tensorflow
import numpy as np
from mlflow import MlflowClient
from mlflow.entities import (
    LoggedModel,
    LoggedModelOutput,
    LoggedModelStatus,
    Metric,
    Param,
    Run,
    RunTag,
)
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature, infer_signature
from mlflow.tracking.context import registry as context_registry
from mlflow.types.schema import Schema, TensorSpec
from mlflow.utils.file_utils import local_file_uri_to_path
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from mlflow.utils.requirements_utils import warn_dependency_requirement_mismatches

from tasks.results import RegisteredModel

logger = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
KIND_TAG = "tuneflow.kind"
# Set on the search that a retraining runs for a challenger, which registers nothing.
PURPOSE_TAG = "tuneflow.purpose"
CHALLENGER_PURPOSE = "challenger"
TRIAL_NUMBER_TAG = "tuneflow.trial_number"
STATUS_TAG = "tuneflow.status"
ERROR_TAG = "tuneflow.error"
WORKER_TAG = "tuneflow.worker"
MAX_TAG_LENGTH = 5000
# Minimum seconds between writes of epoch metrics during training (EpochMetricsLogger).
LIVE_METRICS_INTERVAL_SECONDS = 5.0


def default_tracking_uri(cwd: Path | None = None) -> str:
    """Return the SQLite store in the working directory: `sqlite:///<cwd>/mlflow.db`."""
    return f"sqlite:///{(cwd or Path.cwd()).resolve() / 'mlflow.db'}"


def resolve_tracking_uri(
    explicit: str | None = None, from_spec: str | None = None
) -> str:
    """Pick the tracking URI: `explicit`, then the spec's, then $MLFLOW_TRACKING_URI.

    Falls back to `default_tracking_uri()` when none of them is set.
    """
    return (
        explicit
        or from_spec
        or os.environ.get("MLFLOW_TRACKING_URI")
        or (default_tracking_uri())
    )


class TrackingUriSource(enum.Enum):
    """The setting that `resolve_tracking_uri` took the URI from, as a user names it."""

    OPTION = "--tracking-uri"
    SPEC = "the spec's [mlflow] tracking_uri"
    ENVIRONMENT = "$MLFLOW_TRACKING_URI"
    DEFAULT = "the default store"


def tracking_uri_source(
    explicit: str | None = None, from_spec: str | None = None
) -> TrackingUriSource:
    """Return where `resolve_tracking_uri(explicit, from_spec)` takes its URI from."""
    if explicit:
        return TrackingUriSource.OPTION
    if from_spec:
        return TrackingUriSource.SPEC
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return TrackingUriSource.ENVIRONMENT
    return TrackingUriSource.DEFAULT


# How to point the command at another server, by where the URI came from.
# --tracking-uri comes before the spec, which comes before the variable.
_OTHER_SERVER_FIXES = {
    TrackingUriSource.OPTION: "or pass the URI of a running server to --tracking-uri",
    TrackingUriSource.SPEC: (
        "or fix [mlflow] tracking_uri in the spec, or pass the URI of a running "
        "server to --tracking-uri, which overrides the spec's"
    ),
    TrackingUriSource.ENVIRONMENT: (
        "or fix $MLFLOW_TRACKING_URI, or pass the URI of a running server to "
        "--tracking-uri"
    ),
}


def mlflow_command() -> str:
    """Return the start of a shell command that runs this interpreter's MLflow CLI.

    The `mlflow` script next to `sys.executable`, by its absolute path, works
    in a shell where the virtual environment is not active. Without that
    script, `python -m mlflow` runs the same CLI.
    """
    if not sys.executable:
        return "mlflow"
    executable = shutil.which("mlflow", path=str(Path(sys.executable).parent))
    if executable is not None:
        return shlex.quote(str(Path(executable).absolute()))
    return f"{shlex.quote(sys.executable)} -m mlflow"


def sqlite_database_path(tracking_uri: str) -> Path | None:
    """Return the database file of a `sqlite:///` URI, or None for other stores."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(unquote(tracking_uri[len("sqlite:///") :])).resolve()


def check_tracking_server(
    tracking_uri: str,
    timeout_seconds: float = 5.0,
    *,
    source: TrackingUriSource | None = None,
) -> None:
    """Raise SpecError when no server responds at an `http(s)://` tracking URI.

    MLflow's client retries a refused connection for minutes, so the search
    requests the server's `/health` endpoint once before it starts. Any HTTP
    response counts, because a server behind a login still responds. Other
    stores pass. The error names `source`, the setting the URI came from, and
    how to change it.
    """
    from tasks.spec import SpecError

    if urlparse(tracking_uri).scheme not in ("http", "https"):
        return
    try:
        urllib.request.urlopen(
            f"{tracking_uri.rstrip('/')}/health", timeout=timeout_seconds
        ).close()
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        origin = f", from {source.value}" if source is not None else ""
        other_server = _OTHER_SERVER_FIXES.get(
            source, "or point the search at a running server"
        )
        raise SpecError(
            [
                f"mlflow.tracking_uri: no MLflow tracking server responds at "
                f"{tracking_uri} ({reason}). Received: tracking_uri={tracking_uri!r}"
                f"{origin}. Start the server, e.g. `{_server_command(tracking_uri)}`, "
                f"{other_server}."
            ]
        ) from None


# URI schemes of the stores this pipeline logs to: MLflow's database stores
# (a dialect may name its driver, as in postgresql+psycopg2) and its servers.
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
SERVER_SCHEMES = ("http", "https", "databricks")
# A server address without a scheme, such as 127.0.0.1:5000.
HOST_AND_PORT = re.compile(r"^[\w.-]+:\d+/?$")


def check_tracking_uri(
    tracking_uri: str, source: TrackingUriSource | None = None
) -> None:
    """Raise SpecError for a tracking URI that names no database or server.

    A folder path, or a `file:` URI, names MLflow's file store, which MLflow 3
    keeps in maintenance mode and which fails on this pipeline's logged
    models. A URI without a known scheme, such as `127.0.0.1:5000`, is most
    likely a server address without `http://`.
    """
    from tasks.spec import SpecError

    scheme = urlparse(tracking_uri).scheme.lower()
    if scheme.split("+")[0] in DATABASE_SCHEMES or scheme in SERVER_SCHEMES:
        return
    origin = f", from {source.value}" if source is not None else ""
    received = f"Received: tracking_uri={tracking_uri!r}{origin}."
    if HOST_AND_PORT.match(tracking_uri):
        raise SpecError(
            [
                f"mlflow.tracking_uri: {tracking_uri!r} has no scheme. {received} "
                f"Write http://{tracking_uri} for a tracking server at that address."
            ]
        )
    if scheme in ("", "file"):
        folder, database, migrate = file_store_migration(tracking_uri)
        migration = ""
        if folder.is_dir():
            migration = f" `{migrate}` copies the runs of the file store into it."
        raise SpecError(
            [
                "mlflow.tracking_uri: a folder is MLflow's file store, which MLflow "
                f"3 keeps in maintenance mode and this pipeline does not log to. "
                f"{received} Use a SQLite database, e.g. sqlite:///{database}, or a "
                f"tracking server, e.g. http://127.0.0.1:5000.{migration}"
            ]
        )
    raise SpecError(
        [
            f"mlflow.tracking_uri: unknown scheme {scheme!r}. {received} Use "
            "http://HOST:PORT for a tracking server, e.g. http://127.0.0.1:5000, or "
            "sqlite:///PATH for a local database, e.g. sqlite:///$PWD/mlflow.db."
        ]
    )


def file_store_migration(tracking_uri: str) -> tuple[Path, Path, str]:
    """Return a file store's folder, a SQLite database to replace it, and a command.

    The database is `mlflow.db` next to the folder. The command copies the
    store's runs into it with `mlflow migrate-filestore`.
    """
    folder = Path(local_file_uri_to_path(tracking_uri)).resolve()
    database = folder.parent / "mlflow.db"
    command = (
        f"{mlflow_command()} migrate-filestore --source {folder} --target "
        f"sqlite:///{database}"
    )
    return folder, database, command


def _server_command(tracking_uri: str) -> str:
    """Return an `mlflow server` command that serves a SQLite store at the URI."""
    parsed = urlparse(tracking_uri)
    host = parsed.hostname or "127.0.0.1"
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError:
        port = 5000
    return (
        f"{mlflow_command()} server --backend-store-uri sqlite:///mlflow.db "
        f"--host {shlex.quote(host)} --port {port}"
    )


def ui_command(tracking_uri: str) -> str | None:
    """Return the shell command that opens the MLflow UI on a local store.

    The command runs the MLflow CLI of this interpreter (`mlflow_command`),
    so it works as printed. Returns None for a tracking server (`http://` or
    `https://`), which serves its own UI at that address.
    """
    if urlparse(tracking_uri).scheme in ("http", "https"):
        return None
    database = sqlite_database_path(tracking_uri)
    if database is not None:
        tracking_uri = f"sqlite:///{database}"
    return f"{mlflow_command()} ui --backend-store-uri {shlex.quote(tracking_uri)}"


def ensure_experiment(client: MlflowClient, name: str, tracking_uri: str) -> str:
    """Return the id of experiment `name`, creating it when missing.

    A new experiment on a SQLite store keeps its artifacts in `mlartifacts/`
    next to the database file, not in the working directory.

    Raises:
        ValueError: the experiment exists but was deleted.
    """
    experiment = client.get_experiment_by_name(name)
    use_write_ahead_log(tracking_uri)
    if experiment is None:
        try:
            return client.create_experiment(
                name, artifact_location=_artifact_root(tracking_uri, name)
            )
        except MlflowException:
            # Another process may have created it in between; read it back.
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        raise ValueError(
            f"mlflow.experiment: the experiment {name!r} was deleted. Received: "
            f"experiment={name!r}. Restore it with `mlflow experiments restore "
            f"--experiment-id {experiment.experiment_id}`, or choose another name."
        )
    return experiment.experiment_id


def use_write_ahead_log(tracking_uri: str) -> None:
    """Switch a SQLite store to write-ahead logging; other stores are left alone.

    In WAL mode a commit syncs one file instead of two. That halves the cost of
    each MLflow write (about 6 ms to 3 ms a batch, measured). Readers such as the
    MLflow UI also no longer block the search's writes. The mode is stored in the
    database file, so this runs once per store. WAL needs a local disk: SQLite
    refuses it on file systems without shared memory, and the store keeps its mode.
    """
    database = sqlite_database_path(tracking_uri)
    if database is None or not database.exists():
        return
    try:
        connection = sqlite3.connect(database, timeout=5)
        try:
            (mode,) = connection.execute("PRAGMA journal_mode=WAL").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as error:
        logger.debug("Keeping the journal mode of %s: %s", database, error)
        return
    if mode.lower() != "wal":
        logger.debug("SQLite kept journal mode %r for %s.", mode, database)


def _artifact_root(tracking_uri: str, experiment_name: str) -> str | None:
    database = sqlite_database_path(tracking_uri)
    if database is None:
        return None
    folder = (
        re.sub(r"[^A-Za-z0-9._-]+", "-", experiment_name).strip("-") or "experiment"
    )
    return (database.parent / "mlartifacts" / folder).as_uri()


def start_search_run(
    client: MlflowClient,
    experiment_id: str,
    *,
    params: Mapping[str, Any],
    tags: Mapping[str, str],
    artifacts: Mapping[str, str],
) -> str:
    """Create the parent run of a search, with its params, tags and text artifacts.

    `artifacts` maps a file name (such as "spec.toml") to its text.
    """
    run = client.create_run(
        experiment_id,
        run_name=f"search-{time.strftime('%Y%m%d-%H%M%S')}",
        tags={KIND_TAG: "search", STATUS_TAG: "RUNNING", **tags},
    )
    run_id = run.info.run_id
    client.log_batch(run_id, params=_params(params))
    for file_name, text in artifacts.items():
        client.log_text(run_id, text, file_name)
    logger.info("Started search run %s in experiment %s.", run_id, experiment_id)
    return run_id


def start_trial_run(
    client: MlflowClient,
    parent_run_id: str,
    trial_number: int,
    values: Mapping[str, Any],
    tags: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """Create the child run of one trial under `parent_run_id`, values as params.

    `tags` join the run's own tags. Returns the run id and the experiment id.
    """
    experiment_id = _experiment_of_run(client, parent_run_id)
    run = client.create_run(
        experiment_id,
        run_name=f"trial-{trial_number}",
        tags={
            MLFLOW_PARENT_RUN_ID: parent_run_id,
            KIND_TAG: "trial",
            TRIAL_NUMBER_TAG: str(trial_number),
            STATUS_TAG: "RUNNING",
            WORKER_TAG: process_name(),
            **(tags or {}),
        },
    )
    client.log_batch(run.info.run_id, params=_params(values))
    return run.info.run_id, experiment_id


def process_name() -> str:
    """Return `<host name>:<process id>`, which names the process that ran a trial."""
    return f"{socket.gethostname()}:{os.getpid()}"


# The experiment of each search run this process has started trials under.
_search_experiments: dict[tuple[str, str], str] = {}


def _experiment_of_run(client: MlflowClient, run_id: str) -> str:
    key = (client.tracking_uri, run_id)
    if key not in _search_experiments:
        _search_experiments[key] = client.get_run(run_id).info.experiment_id
    return _search_experiments[key]


def linked_to_model(metric: Metric, model_id: str) -> Metric:
    """Return a copy of `metric` that also names the logged model `model_id`."""
    return Metric(
        key=metric.key,
        value=metric.value,
        timestamp=metric.timestamp,
        step=metric.step,
        model_id=model_id,
    )


@dataclass
class RunRecords:
    """Metrics, params and tags of one run, gathered to be written in one batch."""

    metrics: list[Metric] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)
    tags: list[RunTag] = field(default_factory=list)

    def extend(self, other: RunRecords) -> None:
        self.metrics.extend(other.metrics)
        self.params.extend(other.params)
        self.tags.extend(other.tags)

    def link_model_metrics(self, model_id: str, step: int) -> None:
        """Link each metric at `step` in this batch to the logged model `model_id`.

        MLflow shows a logged model's metrics with the model. A metric that
        names a model is stored for both the run and the model, so one record
        serves both.
        """
        self.metrics = [
            linked_to_model(metric, model_id)
            if metric.step == step and metric.model_id is None
            else metric
            for metric in self.metrics
        ]

    def write(self, client: MlflowClient, run_id: str) -> None:
        client.log_batch(
            run_id, metrics=self.metrics, params=self.params, tags=self.tags
        )

    @contextlib.contextmanager
    def written_if_failing(self, client: MlflowClient, run_id: str) -> Iterator[None]:
        """Write these records when the block raises, so that a failure keeps them.

        A failed write is logged, and the block's error propagates.
        """
        try:
            yield
        except BaseException:
            try:
                self.write(client, run_id)
            except Exception as error:
                logger.warning(
                    "Writing the records of run %s after an error failed: %s",
                    run_id,
                    error,
                )
            raise


class EpochMetricsLogger(keras.callbacks.Callback):
    """Keras callback that records each epoch's metrics with step = epoch.

    An epoch's metrics are written at its end when `write_interval_seconds`
    have passed since the last write, and otherwise wait in `pending`. A write
    to a SQLite store costs milliseconds, which short epochs are not worth,
    while long epochs still reach the MLflow UI as they end. After
    training, `take_pending()` hands the waiting metrics to the trial's final
    batch; after a failure, `flush()` writes them. Each metric keeps the time
    its epoch ended.
    """

    def __init__(
        self,
        client: MlflowClient,
        run_id: str,
        write_interval_seconds: float = LIVE_METRICS_INTERVAL_SECONDS,
    ) -> None:
        super().__init__()
        self.client = client
        self.run_id = run_id
        self.write_interval_seconds = write_interval_seconds
        self.pending: list[Metric] = []
        self.written: list[Metric] = []
        self._last_write = time.monotonic()

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._last_write = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        timestamp = int(time.time() * 1000)
        self.pending.extend(
            Metric(key=name, value=float(value), timestamp=timestamp, step=epoch)
            for name, value in (logs or {}).items()
        )
        if time.monotonic() - self._last_write >= self.write_interval_seconds:
            self.flush()

    def take_pending(self) -> list[Metric]:
        """Return the metrics not written yet, and forget them."""
        pending, self.pending = self.pending, []
        return pending

    def flush(self) -> None:
        """Write the metrics not written yet."""
        pending = self.take_pending()
        if pending:
            self.client.log_batch(self.run_id, metrics=pending)
            self.written.extend(pending)
        self._last_write = time.monotonic()

    def written_at(self, step: int, model_id: str) -> list[Metric]:
        """Return the metrics written for epoch `step`, linked to model `model_id`."""
        return [
            linked_to_model(metric, model_id)
            for metric in self.written
            if metric.step == step
        ]

    @contextlib.contextmanager
    def written_if_training_fails(self) -> Iterator[None]:
        """Write the waiting metrics when the block raises, then raise its error.

        A failed write is logged, not raised, so that it does not hide why
        training stopped.
        """
        try:
            yield
        except BaseException:
            try:
                self.flush()
            except Exception as error:
                logger.warning(
                    "Failed to write the last epochs' metrics of run %s: %s",
                    self.run_id,
                    error,
                )
            raise


def outcome_records(
    *,
    objective_name: str,
    score: float,
    best_epoch: int,
    values: Mapping[str, Any],
    logged_values: Iterable[str],
) -> RunRecords:
    """Return the final objective, and the values read beyond the tuned ones, as params.

    `logged_values` names the params logged when the run started. They are
    skipped, because MLflow rejects logging a param twice with another value.
    """
    already = set(logged_values)
    timestamp = int(time.time() * 1000)
    return RunRecords(
        metrics=[
            Metric(f"best_{objective_name}", float(score), timestamp, best_epoch),
            Metric("best_epoch", float(best_epoch), timestamp, best_epoch),
        ],
        params=_params({k: v for k, v in values.items() if k not in already}),
        tags=[RunTag("tuneflow.objective", objective_name)],
    )


def log_trial_model(
    client: MlflowClient,
    model: Any,
    *,
    run_id: str,
    experiment_id: str,
    trial_number: int,
    sample_x: np.ndarray,
    best_epoch: int,
) -> LoggedModel:
    """Log a trial's model as an MLflow logged model linked to its child run.

    The logged model is created, linked to the run as its output at
    `best_epoch`, saved with `mlflow.tensorflow.save_model` and finalized
    READY. A failure on the way finalizes it FAILED. This does what
    `mlflow.tensorflow.log_model` does with three fewer calls to the store:
    that function reads the model back, then reads the run and writes its
    metrics of `best_epoch` again, linked to the model. Here the caller links
    them in the trial's last batch (`RunRecords.link_model_metrics`,
    `EpochMetricsLogger.written_at`). Logging the digits model took 32 ms
    this way and 41 ms with `log_model` (SQLite store, 2 CPU cores, MLflow
    3.17).
    """
    name = f"trial-{trial_number}"
    signature = model_signature(model, sample_x)
    logged_model = client.create_logged_model(
        experiment_id,
        name=name,
        source_run_id=run_id,
        tags={**source_tags(), TRIAL_NUMBER_TAG: str(trial_number)},
    )
    try:
        client.log_outputs(
            run_id, [LoggedModelOutput(logged_model.model_id, step=best_epoch)]
        )
        with tempfile.TemporaryDirectory() as folder, reusing_keras_save_skipsets():
            path = os.path.join(folder, "model")
            mlflow.tensorflow.save_model(
                model,
                path,
                mlflow_model=Model(
                    artifact_path=logged_model.artifact_location,
                    model_uuid=logged_model.model_id,
                    run_id=run_id,
                    model_id=logged_model.model_id,
                ),
                signature=signature,
                pip_requirements=model_pip_requirements(),
            )
            client.log_model_artifacts(logged_model.model_id, path)
        return client.finalize_logged_model(
            logged_model.model_id, LoggedModelStatus.READY
        )
    except BaseException:
        client.finalize_logged_model(logged_model.model_id, LoggedModelStatus.FAILED)
        raise


@functools.cache
def source_tags() -> dict[str, str]:
    """Return MLflow's tags for the source, the user and the git commit of this process.

    MLflow's own model logging adds them to each logged model. They are read
    once per process, because the first read took 34 ms.
    """
    return dict(context_registry.resolve_tags())


def fail_pending_models(client: MlflowClient, run_id: str) -> None:
    """Mark the logged models of run `run_id` that are still PENDING as FAILED.

    A trial stopped while its model was being logged, by a second Ctrl-C or a
    killed worker process, leaves that model PENDING with missing files. A
    failed lookup is logged, not raised, so that the run still gets ended.
    """
    try:
        experiment_id = client.get_run(run_id).info.experiment_id
        models = client.search_logged_models(
            [experiment_id], filter_string=f"source_run_id = '{run_id}'"
        )
    except MlflowException as error:
        logger.warning(
            "Failed to look up the logged models of run %s to mark unfinished "
            "ones FAILED: %s",
            run_id,
            error,
        )
        return
    for model in models:
        if model.status == LoggedModelStatus.PENDING:
            client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
            logger.info(
                "Marked logged model %s of run %s as FAILED: its upload did not "
                "finish.",
                model.model_id,
                run_id,
            )


# Keras 3.15's `saving_lib.get_attr_skipset(kind)` stores the attribute names
# that a save skips for each kind of object under "saving_attr_skipset_<kind>",
# but looks them up under "saving_attr_skiplist_<kind>". It never finds them,
# so each save builds a reference Layer, Metric and Optimizer (with variables)
# for every object it walks: about 5 ms of a 21 ms save of the digits model.
_SKIPSET_KINDS = (
    "Operation",
    "Layer",
    "Functional",
    "Sequential",
    "Metric",
    "Optimizer",
    "Loss",
    "Cross",
    "Feature",
)
_save_skipsets: dict[str, Any] = {}


@contextlib.contextmanager
def reusing_keras_save_skipsets() -> Iterator[None]:
    """Let a Keras save find the skip sets that earlier saves in this process computed.

    They depend only on Keras's classes. Before the block, the sets kept
    from earlier saves go under the names that Keras looks up, because
    `clear_session()` drops them with the rest of Keras's global state. After
    the block, the sets this save computed are kept. The saved file is the
    same either way. On a Keras without this module layout, the block runs
    unchanged.
    """
    try:
        from keras.src.backend.common import global_state
    except ImportError:
        yield
        return
    for kind, skipset in _save_skipsets.items():
        global_state.set_global_attribute(f"saving_attr_skiplist_{kind}", skipset)
    yield
    for kind in _SKIPSET_KINDS:
        skipset = global_state.get_global_attribute(f"saving_attr_skipset_{kind}")
        if skipset is not None:
            _save_skipsets[kind] = skipset


def model_signature(model: Any, sample_x: np.ndarray) -> ModelSignature:
    """Describe the model's input and output tensors for MLflow.

    A model with one symbolic output is described from its graph, because
    tracing a predict function costs about 0.1 s a model (measured on 2 CPU
    cores). Other models predict on `sample_x` instead.
    """
    outputs = getattr(model, "outputs", None)
    if not outputs or len(outputs) != 1:
        return infer_signature(sample_x, model.predict(sample_x, verbose=0))
    output_shape = [-1 if size is None else size for size in outputs[0].shape[1:]]
    return ModelSignature(
        inputs=Schema([TensorSpec(sample_x.dtype, (-1, *sample_x.shape[1:]))]),
        outputs=Schema([TensorSpec(np.dtype(outputs[0].dtype), (-1, *output_shape))]),
    )


def warm_up_model_logging() -> None:
    """Pay MLflow's one-time cost of logging a model in this process now.

    MLflow checks the first model logged in a process against the installed
    packages. To do so it maps every installed distribution to its modules,
    which took 0.6 s in this project's environment (measured with MLflow
    3.17.2). Later models reuse the map. Called before the first trial, this
    keeps that cost out of the trial and reports a mismatch before training.
    It also reads the source tags that each logged model gets (`source_tags`).
    """
    warn_dependency_requirement_mismatches(model_pip_requirements())
    source_tags()


def model_pip_requirements() -> list[str]:
    """Return pinned requirements for serving a logged Keras model.

    Given explicitly because MLflow otherwise infers them in a subprocess, which
    costs seconds per model.
    """
    requirements = [f"keras=={version('keras')}"]
    for distribution in ("tensorflow-cpu", "tensorflow"):
        try:
            requirements.append(f"{distribution}=={version(distribution)}")
            break
        except PackageNotFoundError:
            continue
    return requirements


def completed_tag() -> RunTag:
    """Return the status tag of a trial run that completed."""
    return RunTag(STATUS_TAG, "COMPLETED")


def end_run(
    client: MlflowClient, run_id: str, status: str, error: BaseException | None = None
) -> None:
    """End a run with `status` "FINISHED" or "FAILED", recording any error."""
    trial_status = "COMPLETED" if status == "FINISHED" else "FAILED"
    tags = [RunTag(STATUS_TAG, trial_status)]
    if error is not None:
        message = f"{type(error).__name__}: {error}"[:MAX_TAG_LENGTH]
        tags.append(RunTag(ERROR_TAG, message))
    client.log_batch(run_id, tags=tags)
    if status != "FINISHED":
        fail_pending_models(client, run_id)
    client.set_terminated(run_id, status=status)


def running_trial_runs(client: MlflowClient, search_run: Run) -> list[str]:
    """Return the ids of the search run's trial runs that are still RUNNING."""
    children = client.search_runs(
        [search_run.info.experiment_id],
        filter_string=(
            f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{search_run.info.run_id}' "
            "and attributes.status = 'RUNNING'"
        ),
    )
    return [child.info.run_id for child in children]


def fail_unfinished_runs(
    client: MlflowClient, parent_run_id: str, error: BaseException
) -> None:
    """End the parent run and every child still RUNNING as FAILED."""
    parent = client.get_run(parent_run_id)
    for run_id in running_trial_runs(client, parent):
        logger.warning("Marking unfinished trial run %s as FAILED.", run_id)
        end_run(client, run_id, "FAILED", error)
    end_run(client, parent_run_id, "FAILED", error)


def register_champion(
    client: MlflowClient,
    model_uri: str,
    name: str,
    *,
    run_id: str,
    trial_number: int,
    objective_name: str,
    score: float,
) -> RegisteredModel:
    """Register a model version under `name` and point the alias `champion` at it.

    The tracking URI must already be set with `mlflow.set_tracking_uri`.
    """
    model_version = mlflow.register_model(
        model_uri,
        name,
        tags={
            TRIAL_NUMBER_TAG: str(trial_number),
            "tuneflow.source_run_id": run_id,
            f"best_{objective_name}": repr(score),
        },
    )
    client.set_registered_model_alias(name, CHAMPION_ALIAS, model_version.version)
    logger.info(
        "Registered %s version %s from trial %d (run %s) with alias %r.",
        name,
        model_version.version,
        trial_number,
        run_id,
        CHAMPION_ALIAS,
    )
    return RegisteredModel(
        name=name,
        version=str(model_version.version),
        alias=CHAMPION_ALIAS,
        model_uri=f"models:/{name}@{CHAMPION_ALIAS}",
    )


def _params(values: Mapping[str, Any]) -> list[Param]:
    return [Param(str(key), str(value)) for key, value in values.items()]
