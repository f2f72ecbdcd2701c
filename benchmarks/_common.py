"""Helpers shared by the benchmark scripts that do not need Prefect.

Importing this module sets the telemetry switches and puts the repository and
`examples/` on `sys.path`, so import it before Prefect, MLflow or the product.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

for name, value in (
    ("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
    ("MLFLOW_DISABLE_TELEMETRY", "true"),
    ("DO_NOT_TRACK", "true"),
    ("TF_CPP_MIN_LOG_LEVEL", "3"),
    ("PREFECT_LOGGING_LEVEL", "WARNING"),
):
    os.environ.setdefault(name, value)

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_DIR = ROOT / "benchmarks"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

import keras  # noqa: E402
import psutil  # noqa: E402

import tuner_core  # noqa: E402
from digits_model import build_model  # noqa: E402
from tasks.data import Dataset, load_dataset, make_data_ref  # noqa: E402
from tasks.results import TrialResult  # noqa: E402
from tasks.spec import TuningSpec, parse_spec  # noqa: E402

SPEC_PATH = ROOT / "examples" / "digits.toml"


def digits_spec(
    store: Path,
    experiment: str,
    *,
    epochs: int,
    base_dir: Path | None = None,
    **settings: Any,
) -> TuningSpec:
    """Return the spec of `examples/digits.toml` with a new store and settings.

    `settings` replace top-level keys of the spec, such as `max_trials` or
    `concurrency`. The store is `<store>/mlflow.db`, one SQLite file for all
    the searches of a benchmark run.
    """
    data = tomllib.loads(SPEC_PATH.read_text())
    data.update(settings)
    data["fit"]["epochs"] = epochs
    data["mlflow"]["tracking_uri"] = f"sqlite:///{store}/mlflow.db"
    data["mlflow"]["experiment"] = experiment
    return parse_spec(data, base_dir=base_dir or SPEC_PATH.parent)


def digits_dataset(spec: TuningSpec | None = None) -> Dataset:
    """Return the digits split of `spec`, by default that of `examples/digits.toml`."""
    if spec is None:
        data = tomllib.loads(SPEC_PATH.read_text())
        spec = parse_spec(data, base_dir=SPEC_PATH.parent)
    return load_dataset(make_data_ref(spec.data, spec.seed))


def tree_cpu_seconds() -> float:
    """Return the CPU seconds of this process, its live children and its reaped ones.

    The children include the temporary Prefect server and the worker processes,
    so the search's CPU time counts all the work it causes.
    """
    process = psutil.Process()
    own = process.cpu_times()
    total = own.user + own.system
    for child in process.children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    reaped = os.times()
    return total + reaped.children_user + reaped.children_system


def tree_rss_mb() -> float:
    """Return the resident memory of this process and all its children, in MB."""
    process = psutil.Process()
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def run_bare(spec: TuningSpec, trials: list[TrialResult]) -> tuple[float, float]:
    """Train each trial's configuration with plain Keras; return wall and CPU seconds.

    The objects that exist before the fits (Prefect's, MLflow's and the
    search's) stay out of the garbage collections during them, as if the fits
    ran in a process with Keras alone. Otherwise the bare side would pay for
    scanning them, which would lower the ratios.
    """
    dataset = load_dataset(make_data_ref(spec.data, spec.seed))
    gc.collect()
    gc.freeze()
    try:
        started = time.perf_counter()
        started_cpu = tree_cpu_seconds()
        for trial in trials:
            # The same reset as the pipeline's: no full garbage collection per build.
            keras.backend.clear_session(free_memory=False)
            model = build_model(_fixed(trial["hyperparameters"]))
            model.fit(
                dataset.x_train,
                dataset.y_train,
                epochs=spec.fit.epochs,
                batch_size=spec.fit.batch_size,
                validation_data=(dataset.x_val, dataset.y_val),
                verbose=0,
            )
        return time.perf_counter() - started, tree_cpu_seconds() - started_cpu
    finally:
        gc.unfreeze()


def _fixed(values: dict[str, Any]) -> tuner_core.HyperParameters:
    """Return a HyperParameters whose every name is fixed to the trial's value."""
    hp = tuner_core.HyperParameters()
    for name, value in values.items():
        hp.Fixed(name, value)
    hp.mark_overrides()
    return hp


@contextlib.contextmanager
def timing_fits() -> Iterator[list[float]]:
    """Collect the wall seconds of each `model.fit` called in this process.

    Fits in worker processes are not seen, so the list stays empty for them.
    """
    seconds: list[float] = []
    original = keras.Model.fit

    def timed_fit(self: keras.Model, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - started)

    keras.Model.fit = timed_fit  # type: ignore[method-assign]
    try:
        yield seconds
    finally:
        keras.Model.fit = original  # type: ignore[method-assign]


def warm_up_tensorflow(spec: TuningSpec) -> float:
    """Fit one model once, so neither side pays TensorFlow's one-time start-up."""
    started = time.perf_counter()
    run_bare(spec, [{"hyperparameters": {}}])  # type: ignore[list-item]
    return time.perf_counter() - started
