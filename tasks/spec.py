"""The job spec: one TOML file that describes a tuning search, validated with pydantic.

Field checks run in pydantic validators. The checks that need the rest of the
spec run once every field is valid. The data file must exist, the hypermodel
must import and the objective must have a direction. The `[[hyperparameters]]`
entries must also build into a `tuner_core.HyperParameters`, which applies
tuner_core's own range, step, sampling and choice checks. Every message names
the field, the value received and the fix.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import math
import posixpath
import re
import sys
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tasks._spec_errors import SpecError, problems_from_validation_error

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "CompileSpec",
    "DaskSpec",
    "DataSpec",
    "FitSpec",
    "HyperparameterSpec",
    "MlflowSpec",
    "ObjectiveSpec",
    "OptimizerSpec",
    "SpecError",
    "TuningSpec",
    "load_spec",
    "parse_spec",
]

OracleName = Literal["random", "grid", "bayesian", "hyperband"]
EngineName = Literal["local", "dask"]

DataSource = Literal["digits", "npz", "csv"]
HYPERPARAMETER_TYPES = ("Int", "Float", "Choice", "Boolean", "Fixed")
SAMPLINGS = ("linear", "log", "reverse_log")

# Fields each hyperparameter type accepts, besides name, type and the parent fields.
_FIELDS_BY_TYPE = {
    "Int": {"min_value", "max_value", "step", "sampling", "default"},
    "Float": {"min_value", "max_value", "step", "sampling", "default"},
    "Choice": {"values", "ordered", "default"},
    "Boolean": {"default"},
    "Fixed": {"value"},
}
_TYPE_SPECIFIC_FIELDS = sorted(set().union(*_FIELDS_BY_TYPE.values()))
_REQUIRED_BY_TYPE = {
    "Int": ("min_value", "max_value"),
    "Float": ("min_value", "max_value"),
    "Choice": ("values",),
    "Boolean": (),
    "Fixed": ("value",),
}
_SUFFIX_SOURCES = {".npz": "npz", ".csv": "csv"}
DEFAULT_MAX_TRIALS = 10
PROJECT_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# A Dask scheduler address: an optional protocol, a host or [IPv6] address, a port.
DASK_ADDRESS_PATTERN = re.compile(
    r"(?:(?:tcp|tls|ws|wss|ucx)://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):[0-9]{1,5}"
)
MAX_PORT = 65535
# The example value that the error for a count below 1 suggests (10 otherwise).
_POSITIVE_EXAMPLES = {
    "concurrency": 1,
    "executions_per_trial": 2,
    "max_consecutive_failed_trials": 3,
    "num_initial_points": 5,
    "max_epochs": 27,
    "hyperband_iterations": 1,
}


def _is_gpu_id(value: Any) -> bool:
    """Return whether `value` can be one CUDA_VISIBLE_DEVICES entry."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value >= 0
    if not isinstance(value, str) or not value or value.startswith("-"):
        return False
    return "," not in value and not any(char.isspace() for char in value)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSpec(_Section):
    """The `[data]` table: where the samples come from and how they are split."""

    source: DataSource | None = None
    path: Path | None = None
    x_key: str = "x"
    y_key: str = "y"
    label_column: str = "label"
    validation_split: float = 0.2
    sample_shape: list[StrictInt] | None = None

    @field_validator("source", mode="before")
    @classmethod
    def _check_source(cls, value: Any) -> Any:
        if value is not None and value not in get_args(DataSource):
            raise ValueError(
                f"unknown data source. Received: source={value!r}. Use 'digits' for "
                "scikit-learn's handwritten digits, or 'npz' or 'csv' with a path."
            )
        return value

    @field_validator("validation_split")
    @classmethod
    def _check_split(cls, value: float) -> float:
        if not 0.0 < value < 1.0:
            raise ValueError(
                "must be between 0 and 1, exclusive. Received: "
                f"validation_split={value!r}. Use a fraction such as 0.2 to hold out "
                "20% of the samples for validation."
            )
        return value

    @field_validator("sample_shape")
    @classmethod
    def _check_sample_shape(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(size < 1 for size in value)):
            raise ValueError(
                "must list positive sizes. Received: "
                f"sample_shape={value!r}. Give the shape of one sample, e.g. [8, 8, 1]."
            )
        return value

    @model_validator(mode="after")
    def _infer_and_check_source(self, info: ValidationInfo) -> DataSpec:
        if self.source is None:
            if self.path is None:
                self.source = "digits"
            else:
                self.source = _SUFFIX_SOURCES.get(self.path.suffix.lower())
                base_dir = (info.context or {}).get("base_dir") or Path.cwd()
                if self.source is None and (base_dir / self.path).is_dir():
                    from tasks.spec_checks import data_folder_problem

                    raise ValueError(
                        data_folder_problem("path", self.path, base_dir / self.path)
                    )
                if self.source is None:
                    raise ValueError(
                        "source: cannot tell the file format from the path. Received: "
                        f"path={str(self.path)!r}. Set source = 'npz' or 'csv', or "
                        "use a file ending in .npz or .csv."
                    )
        if self.source == "digits" and self.path is not None:
            raise ValueError(
                "path: the built-in digits data set takes no path. Received: "
                f"path={str(self.path)!r}. Remove path, or set source = 'npz' or 'csv'."
            )
        if self.source != "digits" and self.path is None:
            raise ValueError(
                f"path: source {self.source!r} needs a file path but none was given. "
                f"Add path = 'data.{self.source}' (relative to the spec's folder)."
            )
        return self


class HyperparameterSpec(_Section):
    """One `[[hyperparameters]]` entry, with KerasTuner's argument names."""

    name: str
    type: str
    min_value: Any = None
    max_value: Any = None
    step: Any = None
    sampling: str | None = None
    default: Any = None
    values: list[Any] | None = None
    ordered: StrictBool | None = None
    value: Any = None
    parent_name: str | None = None
    parent_values: list[Any] | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(
                f"must not be empty. Received: name={value!r}. Name the "
                "hyperparameter as the build function does, e.g. 'units'."
            )
        return value

    @field_validator("type")
    @classmethod
    def _check_type(cls, value: str) -> str:
        if value not in HYPERPARAMETER_TYPES:
            hint = next(
                (t for t in HYPERPARAMETER_TYPES if t.lower() == value.lower()), None
            )
            suggestion = f" Did you mean {hint!r}?" if hint else ""
            raise ValueError(
                f"unknown hyperparameter type. Received: type={value!r}. Use one of "
                f"{', '.join(HYPERPARAMETER_TYPES)}.{suggestion}"
            )
        return value

    @field_validator("min_value", "max_value", "step")
    @classmethod
    def _check_number(cls, value: Any, info: Any) -> Any:
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if value is not None and (not is_number or not math.isfinite(value)):
            raise ValueError(
                f"must be a finite number. Received: {info.field_name}={value!r}. "
                f"Write {info.field_name} as a number such as 32 or 0.001."
            )
        return value

    @field_validator("sampling")
    @classmethod
    def _check_sampling(cls, value: str | None) -> str | None:
        if value is not None and value not in SAMPLINGS:
            raise ValueError(
                f"unknown sampling. Received: sampling={value!r}. Use one of "
                f"{', '.join(SAMPLINGS)}."
            )
        return value

    @model_validator(mode="after")
    def _check_fields_for_type(self) -> HyperparameterSpec:
        allowed = _FIELDS_BY_TYPE[self.type]
        for field in _TYPE_SPECIFIC_FIELDS:
            if field not in allowed and getattr(self, field) is not None:
                raise ValueError(
                    f"{field} does not apply to type {self.type!r} (hyperparameter "
                    f"{self.name!r}). Received: {field}={getattr(self, field)!r}. "
                    f"Remove it, because {self.type} takes only {sorted(allowed)}."
                )
        for field in _REQUIRED_BY_TYPE[self.type]:
            if getattr(self, field) is None:
                raise ValueError(
                    f"{field} is required for type {self.type!r} (hyperparameter "
                    f"{self.name!r}) but missing. Add {field} to this entry."
                )
        if (self.parent_name is None) != (self.parent_values is None):
            raise ValueError(
                f"parent_name and parent_values go together (hyperparameter "
                f"{self.name!r}). Received: parent_name={self.parent_name!r}, "
                f"parent_values={self.parent_values!r}. Set both or neither."
            )
        return self

    def arguments(self) -> dict[str, Any]:
        """Return the keyword arguments for `HyperParameters.<type>(...)`."""
        fields = _FIELDS_BY_TYPE[self.type] | {"name", "parent_name", "parent_values"}
        return {
            field: getattr(self, field)
            for field in sorted(fields)
            if getattr(self, field) is not None
        }


class ObjectiveSpec(_Section):
    """The metric to optimize, with a direction inferred for well-known names."""

    name: str
    direction: str | None = None

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(
                f"must not be empty. Received: name={value!r}. Name the metric to "
                "optimize, e.g. objective = 'val_accuracy', or objective = "
                "{name = 'val_f1', direction = 'max'} for a metric whose direction "
                "cannot be inferred."
            )
        return value

    @field_validator("direction")
    @classmethod
    def _check_direction(cls, value: str | None) -> str | None:
        if value is not None and value not in ("min", "max"):
            raise ValueError(
                f"must be 'min' or 'max'. Received: direction={value!r}. Use 'max' "
                "for metrics to maximize, such as accuracy, and 'min' for losses."
            )
        return value


class OptimizerSpec(_Section):
    """A Keras optimizer by class name with its constructor arguments."""

    class_name: str
    config: dict[str, Any] = Field(default_factory=dict)


def optimizer_suggestion(identifier: Any) -> str:
    """Return ' Did you mean ...?' for a misspelled optimizer or argument name, or ''.

    `identifier` is an optimizer name or a `{"class_name", "config"}` mapping
    that Keras could not build.
    """
    import keras

    classes = {
        name: member
        for name, member in vars(keras.optimizers).items()
        if isinstance(member, type) and issubclass(member, keras.optimizers.Optimizer)
    }
    if isinstance(identifier, str):
        class_name, config = identifier, {}
    else:
        class_name, config = identifier["class_name"], identifier["config"]
    by_lower_name = {name.lower(): name for name in classes}
    optimizer = classes.get(by_lower_name.get(str(class_name).lower(), ""))
    if optimizer is None:
        match = difflib.get_close_matches(
            str(class_name).lower(), list(by_lower_name), n=1, cutoff=0.8
        )
        return f" Did you mean {by_lower_name[match[0]]!r}?" if match else ""
    arguments = [
        name
        for name in inspect.signature(optimizer.__init__).parameters
        if name not in ("self", "kwargs")
    ]
    hints = []
    for key in config:
        if key in arguments:
            continue
        match = difflib.get_close_matches(key, arguments, n=1, cutoff=0.8)
        if match:
            hints.append(f"{match[0]!r} for {key!r}")
    return f" Did you mean {', '.join(hints)}?" if hints else ""


class CompileSpec(_Section):
    """The `[compile]` table: arguments that replace the build function's own."""

    optimizer: str | OptimizerSpec | None = None
    loss: str | None = None
    metrics: list[str] | None = None

    @field_validator("optimizer")
    @classmethod
    def _check_optimizer(cls, value: str | OptimizerSpec | None) -> Any:
        import keras

        if value is None:
            return value
        identifier: Any = value
        if isinstance(value, OptimizerSpec):
            identifier = {"class_name": value.class_name, "config": value.config}
        try:
            # Keras lowercases the class name in the mapping it is given, so it
            # gets a copy.
            keras.optimizers.get(copy.deepcopy(identifier))
        except (ValueError, TypeError) as error:
            raise ValueError(
                f"Keras cannot build this optimizer ({error}). Received: "
                f"optimizer={identifier!r}.{optimizer_suggestion(identifier)} Use a "
                "Keras optimizer name such as 'adam', or a table like {class_name = "
                "'Adam', config = {learning_rate = 0.001}}."
            ) from error
        return value

    @field_validator("loss")
    @classmethod
    def _check_loss(cls, value: str | None) -> str | None:
        import keras

        if value is not None:
            try:
                keras.losses.get(value)
            except ValueError as error:
                raise ValueError(
                    f"unknown Keras loss. Received: loss={value!r}. Use a name from "
                    "keras.losses, e.g. 'mse' or 'sparse_categorical_crossentropy'."
                ) from error
        return value

    @field_validator("metrics")
    @classmethod
    def _check_metrics(cls, value: list[str] | None) -> list[str] | None:
        import keras

        for metric in value or []:
            try:
                keras.metrics.get(metric)
            except ValueError as error:
                raise ValueError(
                    f"unknown Keras metric. Received: metrics={value!r} with "
                    f"{metric!r}. Use names from keras.metrics, e.g. 'accuracy'."
                ) from error
        return value

    def is_empty(self) -> bool:
        return self.optimizer is None and self.loss is None and self.metrics is None


class FitSpec(_Section):
    """The `[fit]` table: arguments given to `model.fit` in every trial."""

    epochs: StrictInt = 1
    batch_size: StrictInt = 32

    @field_validator("epochs", "batch_size")
    @classmethod
    def _check_positive(cls, value: int, info: Any) -> int:
        if value < 1:
            raise ValueError(
                f"must be at least 1. Received: {info.field_name}={value!r}. "
                f"Set {info.field_name} to a positive integer."
            )
        return value


class MlflowSpec(_Section):
    """The `[mlflow]` table: where runs are tracked and the best model registered."""

    tracking_uri: str | None = None
    experiment: str = "tuneflow"
    registered_model_name: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("experiment", "registered_model_name")
    @classmethod
    def _check_name(cls, value: str | None, info: Any) -> str | None:
        if value is not None and not value.strip():
            raise ValueError(
                f"must not be empty. Received: {info.field_name}={value!r}. Give a "
                f"name, or remove {info.field_name} to use the default."
            )
        if info.field_name == "registered_model_name" and value is not None:
            _check_model_name(value)
        return value


def _check_model_name(name: str) -> None:
    """Reject the model names that MLflow's registry rejects.

    MLflow 3.17's `mlflow.utils.validation._validate_model_name` rejects '/' and
    ':', and any name that a POSIX path normalization changes or turns into '.',
    '..' or an absolute path. Without '/', that leaves '.' and names starting
    with '..'.
    """
    if "/" in name or ":" in name:
        fixed = name.replace("/", "-").replace(":", "-")
        raise ValueError(
            "must not contain '/' or ':', because MLflow rejects such model names "
            f"when it registers the best model. Received: registered_model_name="
            f"{name!r}. Replace them, e.g. registered_model_name = {fixed!r}."
        )
    normalized = posixpath.normpath(name)
    if (
        normalized != name
        or normalized == "."
        or normalized.startswith("..")
        or normalized.startswith("/")
    ):
        fixed = name.lstrip(".") or "digits-dense"
        raise ValueError(
            "must not be '.' or start with '..', because MLflow reads model names "
            "as paths and rejects these when it registers the best model. Received: "
            f"registered_model_name={name!r}. Use another name, e.g. "
            f"registered_model_name = {fixed!r}."
        )


def _is_scheduler_address(value: str) -> bool:
    """Return whether `value` is a Dask address with a port from 1 to MAX_PORT."""
    if not DASK_ADDRESS_PATTERN.fullmatch(value):
        return False
    return 1 <= int(value.rsplit(":", 1)[1]) <= MAX_PORT


class DaskSpec(_Section):
    """The `[dask]` table: the Dask cluster that runs the trials when engine = "dask".

    Without an `address`, the flow starts a local cluster of `n_workers` worker
    processes with one thread each, and stops it after the search.
    """

    address: str | None = None
    n_workers: StrictInt | None = None

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str | None) -> str | None:
        if value is not None and not _is_scheduler_address(value):
            raise ValueError(
                "must be a Dask scheduler address with a host and a port. Received: "
                f"address={value!r}. Write the address that `dask scheduler` prints, "
                "e.g. 'tcp://127.0.0.1:8786', or remove address to start a local "
                "cluster of [dask] n_workers worker processes."
            )
        return value

    @field_validator("n_workers")
    @classmethod
    def _check_n_workers(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(
                f"must be at least 1. Received: n_workers={value!r}. Set the number "
                "of worker processes of the local cluster, e.g. n_workers = 2, or "
                "remove n_workers to start one per concurrent trial."
            )
        return value


class TuningSpec(_Section):
    """A whole tuning job: data, hypermodel, search space, objective and tracking."""

    hypermodel: str
    data: DataSpec = Field(default_factory=DataSpec)
    hyperparameters: list[HyperparameterSpec] = Field(default_factory=list)
    tune_new_entries: StrictBool = True
    allow_new_entries: StrictBool = True
    hypermodel_args: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments for the constructor of a HyperModel class.",
    )
    objective: ObjectiveSpec = Field(
        default_factory=lambda: ObjectiveSpec(name="val_loss")
    )
    oracle: OracleName = "random"
    max_trials: StrictInt | None = Field(
        default=None,
        description="Trials to run. Defaults to 10 for the random and bayesian "
        "oracles. Grid search runs the whole grid and Hyperband its whole "
        "schedule unless max_trials caps them.",
    )
    seed: StrictInt | None = None
    executions_per_trial: StrictInt = 1
    max_retries_per_trial: StrictInt = 0
    max_consecutive_failed_trials: StrictInt = 3
    trial_timeout_seconds: float | None = Field(
        default=None,
        description="Seconds one trial may take. A trial past it stops and fails "
        "with the reason 'timeout'. None for no limit.",
    )
    num_initial_points: StrictInt | None = None
    alpha: float | None = None
    beta: float | None = None
    max_epochs: StrictInt | None = None
    factor: StrictInt | None = None
    hyperband_iterations: StrictInt | None = None
    project_name: str | None = None
    overwrite: StrictBool = False
    directory: Path | None = None
    concurrency: StrictInt = 1
    gpus: Literal["auto"] | list[StrictInt | str] = Field(
        default="auto",
        description="GPUs for the worker processes, one per concurrent trial: "
        "'auto' for the visible ones, a list of ids, or [] to pin none.",
    )
    worker_processes: StrictBool | None = None
    max_trials_per_worker: StrictInt = 20
    engine: EngineName = Field(
        default="local",
        description="Where trials run: 'local' on this machine, 'dask' on the "
        "Dask cluster of the [dask] table.",
    )
    dask: DaskSpec = Field(default_factory=DaskSpec)
    fit: FitSpec = Field(default_factory=FitSpec)
    compile: CompileSpec = Field(default_factory=CompileSpec)
    mlflow: MlflowSpec = Field(default_factory=MlflowSpec)
    base_dir: Path = Field(
        default_factory=Path.cwd,
        description="Folder that relative paths and module lookups start from. "
        "load_spec sets it to the spec file's folder.",
    )

    @field_validator("objective", mode="before")
    @classmethod
    def _objective_from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("oracle", mode="before")
    @classmethod
    def _check_oracle(cls, value: Any) -> Any:
        if value not in get_args(OracleName):
            raise ValueError(
                f"unknown oracle. Received: oracle={value!r}. Use one of "
                f"{list(get_args(OracleName))}."
            )
        return value

    @field_validator(
        "max_trials",
        "concurrency",
        "max_trials_per_worker",
        "executions_per_trial",
        "max_consecutive_failed_trials",
        "num_initial_points",
        "max_epochs",
        "hyperband_iterations",
    )
    @classmethod
    def _check_positive(cls, value: int | None, info: Any) -> int | None:
        if value is not None and value < 1:
            example = _POSITIVE_EXAMPLES.get(info.field_name, 10)
            raise ValueError(
                f"must be at least 1. Received: {info.field_name}={value!r}. Set "
                f"{info.field_name} to a positive integer, e.g. {info.field_name} = "
                f"{example}."
            )
        return value

    @field_validator("max_retries_per_trial")
    @classmethod
    def _check_retries(cls, value: int) -> int:
        if value < 0:
            raise ValueError(
                f"must be 0 or more. Received: max_retries_per_trial={value!r}. Set "
                "the number of times a failing trial runs again, e.g. 1, or 0 for "
                "no retries."
            )
        return value

    @field_validator("trial_timeout_seconds", mode="before")
    @classmethod
    def _check_trial_timeout(cls, value: Any) -> Any:
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if value is not None and (
            not is_number or not math.isfinite(value) or value <= 0
        ):
            raise ValueError(
                "must be a number of seconds above 0. Received: "
                f"trial_timeout_seconds={value!r}. Set the seconds one trial may "
                "take, e.g. trial_timeout_seconds = 600, or remove it for no limit."
            )
        return value

    @field_validator("gpus", mode="before")
    @classmethod
    def _check_gpus_form(cls, value: Any) -> Any:
        if value == "auto" or (
            isinstance(value, list)
            and all(_is_gpu_id(gpu) for gpu in value)
            and len({str(gpu) for gpu in value}) == len(value)
        ):
            return value
        raise ValueError(
            "must be 'auto' or a list of distinct GPU ids. Received: "
            f"gpus={value!r}. Write gpus = 'auto' to use the visible GPUs, "
            "gpus = [0, 1] to choose GPUs by index (or by UUID string), or "
            "gpus = [] to pin no GPU."
        )

    @model_validator(mode="after")
    def _check_gpu_count(self) -> TuningSpec:
        from tasks.gpus import gpu_shortage_message, resolve_gpus

        if self.engine != "local":
            if self.gpus != "auto" and self.gpus:
                raise ValueError(
                    "gpus: applies only to engine = 'local', because the Dask "
                    f"workers choose their own devices. Received: gpus={self.gpus!r} "
                    f"with engine={self.engine!r}. Remove gpus."
                )
            return self
        if self.gpus != "auto" and self.gpus and self.concurrency == 1:
            if self.worker_processes is not True:
                raise ValueError(
                    "gpus: pins worker processes, but with concurrency = 1 and no "
                    "worker_processes = true the trials may run in the flow's "
                    f"process, which sees every GPU. Received: gpus={self.gpus!r}. "
                    "Add worker_processes = true, or remove gpus."
                )
        gpu_ids = resolve_gpus(self.gpus)
        if gpu_ids and self.concurrency > len(gpu_ids):
            raise ValueError(f"gpus: {gpu_shortage_message(gpu_ids, self.concurrency)}")
        return self

    @field_validator("factor")
    @classmethod
    def _check_factor(cls, value: int | None) -> int | None:
        if value is not None and value < 2:
            raise ValueError(
                f"must be at least 2. Received: factor={value!r}. Use e.g. factor = 3 "
                "to keep a third of the trials in each Hyperband round."
            )
        return value

    @field_validator("alpha", "beta")
    @classmethod
    def _check_gaussian_process(cls, value: float | None, info: Any) -> float | None:
        if value is None:
            return value
        if info.field_name == "alpha" and not value > 0:
            raise ValueError(
                f"must be above 0. Received: alpha={value!r}. Use a small noise "
                "variance such as alpha = 1e-4."
            )
        if info.field_name == "beta" and not value >= 0:
            raise ValueError(
                f"must be 0 or more. Received: beta={value!r}. Use e.g. beta = 2.6. "
                "Larger values explore more."
            )
        return value

    @field_validator("project_name")
    @classmethod
    def _check_project_name(cls, value: str | None) -> str | None:
        if value is not None and not PROJECT_NAME_PATTERN.fullmatch(value):
            raise ValueError(
                "must start with a letter or digit and contain only letters, digits, "
                f"'.', '_' and '-'. Received: project_name={value!r}. Use a folder "
                "name such as 'digits-search'."
            )
        return value

    @model_validator(mode="after")
    def _check_oracle_options(self) -> TuningSpec:
        from tasks.spec_checks import oracle_option_problems

        problems = oracle_option_problems(self)
        if problems:
            raise SpecError(problems)
        if self.max_trials is None and self.oracle in ("random", "bayesian"):
            self.max_trials = DEFAULT_MAX_TRIALS
        return self

    @field_validator("engine", mode="before")
    @classmethod
    def _check_engine(cls, value: Any) -> Any:
        if value not in get_args(EngineName):
            raise ValueError(
                f"unknown engine. Received: engine={value!r}. Use 'local' to run "
                "trials on this machine, or 'dask' to run them on a Dask cluster."
            )
        return value

    @model_validator(mode="after")
    def _check_engine_options(self) -> TuningSpec:
        from tasks.spec_checks import engine_option_problems

        problems = engine_option_problems(self)
        if problems:
            raise SpecError(problems)
        return self

    @model_validator(mode="after")
    def _check_worker_processes(self) -> TuningSpec:
        if self.concurrency > 1 and self.worker_processes is False:
            raise ValueError(
                "worker_processes: concurrent trials need worker processes, because "
                "trials in one process share Keras's global state. Received: "
                f"worker_processes=false with concurrency={self.concurrency}. Remove "
                "worker_processes (or set it to true), or set concurrency = 1."
            )
        return self

    @field_validator("seed")
    @classmethod
    def _check_seed(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ValueError(
                f"must be 0 or more. Received: seed={value!r}. Use a non-negative "
                "integer, or remove seed for a random one."
            )
        return value

    @field_validator("hypermodel")
    @classmethod
    def _check_hypermodel_form(cls, value: str) -> str:
        module_name, separator, attribute = value.partition(":")
        if not separator or not module_name.strip() or not attribute.strip():
            raise ValueError(
                "must have the form 'module:attribute'. Received: "
                f"hypermodel={value!r}. "
                "Write the module's import path, a colon and the build function or "
                "HyperModel name, e.g. 'digits_model:build_model'."
            )
        return value

    @model_validator(mode="after")
    def _check_semantics(self) -> TuningSpec:
        from tasks.spec_checks import find_spec_problems

        self.base_dir = self.base_dir.resolve()
        if self.data.path is not None:
            self.data.path = (self.base_dir / self.data.path).resolve()
        if self.directory is not None:
            self.directory = (self.base_dir / self.directory).resolve()
        problems = find_spec_problems(self)
        if problems:
            raise SpecError(problems)
        return self

    def epochs_are_set(self) -> bool:
        """Return whether the spec gives [fit] epochs, rather than the default."""
        return "epochs" in self.fit.model_fields_set

    def uses_worker_processes(self) -> bool:
        """Return whether trials run in worker processes, not the flow's process.

        By default they do when trials run concurrently, or when the search is
        long enough that TensorFlow's memory growth in one process matters.
        With engine = "dask", the Dask worker processes run the trials instead.
        """
        if self.engine == "dask":
            return False
        if self.worker_processes is None:
            from tasks.oracles import planned_num_trials

            planned = planned_num_trials(self)
            # A grid without max_trials is sized by its search space: assume long.
            long_search = planned is None or planned > self.max_trials_per_worker
            return self.concurrency > 1 or long_search
        return self.worker_processes


def parse_spec(
    data: dict[str, Any], base_dir: Path | None = None, source: str | None = None
) -> TuningSpec:
    """Validate a spec given as a mapping, such as parsed TOML.

    Relative paths and module lookups start from `base_dir` (the working
    directory when None).

    Raises:
        SpecError: the spec is invalid. Its message lists every problem found.
    """
    if base_dir is not None:
        data = {**data, "base_dir": base_dir}
    try:
        # The context lets [data] tell a folder from a file before paths resolve.
        return TuningSpec.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as error:
        raise SpecError(
            problems_from_validation_error(error, TuningSpec), source
        ) from None


def load_spec(path: str | Path) -> TuningSpec:
    """Read and validate a TOML spec file.

    Raises:
        SpecError: the path is missing or names a folder, the file cannot be
            read or is not UTF-8, is not valid TOML, or describes an invalid spec.
    """
    path = Path(path)
    text = _read_spec_text(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SpecError(
            [f"the file is not valid TOML ({error}). Fix the syntax at that line."],
            str(path),
        ) from None
    if "base_dir" in data:
        raise SpecError(
            [
                "base_dir: this field is set from the spec file's location. Received: "
                f"base_dir={data['base_dir']!r}. Remove it, because relative paths "
                "already start from the spec's folder."
            ],
            str(path),
        )
    return parse_spec(data, base_dir=path.parent.resolve(), source=str(path))


# How many spec files in a folder the error for a folder path suggests.
MAX_SUGGESTED_SPECS = 3


def _read_spec_text(path: Path) -> str:
    """Return a spec file's text, or raise SpecError saying why it cannot be read."""
    if path.is_dir():
        raise SpecError([_folder_problem(path)])
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(
            [
                f"spec file not found: {str(path)!r}. Check the path, or write the "
                "spec first (see examples/digits.toml)."
            ]
        ) from None
    except OSError as error:
        raise SpecError(
            [
                f"cannot read the spec file {str(path)!r} ({type(error).__name__}: "
                f"{error.strerror or error}). Make the file readable, or pass the "
                "path of another spec file."
            ]
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise SpecError(
            [
                f"the spec file is not UTF-8 text: byte {data[error.start]:#04x} at "
                f"line {line} is not valid UTF-8. TOML files must be UTF-8, so save "
                "the file with the UTF-8 encoding."
            ],
            str(path),
        ) from None


def _folder_problem(path: Path) -> str:
    """Describe a spec path that names a folder, suggesting spec files inside it."""
    specs = sorted(child for child in path.glob("*.toml") if child.is_file())
    if specs:
        names = ", ".join(
            repr(str(spec)) for spec in specs[:MAX_SUGGESTED_SPECS]
        )
        more = " and others" if len(specs) > MAX_SUGGESTED_SPECS else ""
        fix = f"Pass one of the .toml files in it, such as {names}{more}."
    else:
        fix = (
            "Pass the path of a .toml spec file instead, e.g. examples/digits.toml "
            "in the repository."
        )
    return f"the spec path {str(path)!r} is a folder, not a TOML file. {fix}"
