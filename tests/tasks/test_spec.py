"""Valid specs: examples load, defaults apply, tailoring shapes the search space."""

from __future__ import annotations

from pathlib import Path

import pytest

import tuner_core
from tasks.oracles import build_oracle, planned_num_trials
from tasks.preparation import validate_spec_file
from tasks.search_space import (
    compile_overrides_from_spec,
    load_hypermodel,
    objective_from_spec,
)
from tasks.spec import TuningSpec, load_spec, parse_spec
from tuner_core.applications import HyperXception

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

SEARCH_A_FEW_SUMMARY = """\
Search space summary
Default search space size: 1
learning_rate (Float)
{'default': 0.0001, 'conditions': [], 'min_value': 0.0001, 'max_value': 0.01, \
'step': None, 'sampling': 'log'}"""

FIX_A_FEW_SUMMARY = """\
Search space summary
Default search space size: 3
learning_rate (Fixed)
{'conditions': [], 'value': 0.0001}
units (Int)
{'default': 64, 'conditions': [], 'min_value': 32, 'max_value': 128, 'step': 32, \
'sampling': 'linear'}
dropout (Boolean)
{'default': False, 'conditions': []}"""


@pytest.mark.parametrize(
    "name", ["digits", "search_a_few", "fix_a_few", "compile_override"]
)
def test_example_spec_valid(name: str) -> None:
    report = validate_spec_file(EXAMPLES / f"{name}.toml")

    assert report.spec.hypermodel == "digits_model:build_model"
    assert report.data_ref.num_samples == 1797
    assert report.search_space["summary"].startswith("Search space summary")


def test_search_a_few_summary_exact() -> None:
    report = validate_spec_file(EXAMPLES / "search_a_few.toml")

    assert report.search_space["summary"] == SEARCH_A_FEW_SUMMARY


def test_fix_a_few_summary_exact() -> None:
    report = validate_spec_file(EXAMPLES / "fix_a_few.toml")

    assert report.search_space["summary"] == FIX_A_FEW_SUMMARY


def test_compile_override_spec_converted() -> None:
    report = validate_spec_file(EXAMPLES / "compile_override.toml")
    spec = report.spec

    overrides = compile_overrides_from_spec(spec)
    objective = objective_from_spec(spec)

    assert overrides is not None
    assert overrides.optimizer == {
        "class_name": "Adam",
        "config": {"learning_rate": 1e-3},
    }
    assert overrides.loss == "mse"
    assert overrides.metrics == ["sparse_categorical_crossentropy"]
    assert objective == tuner_core.Objective("val_loss", "min")
    assert report.search_space["overridden"] == {"learning_rate": ["optimizer"]}


def test_spec_defaults() -> None:
    spec = parse_spec({"hypermodel": "hypermodels:build_tiny_model"})

    assert spec.oracle == "random"
    assert spec.max_trials == 10
    assert spec.concurrency == 1
    assert spec.objective.name == "val_loss"
    assert spec.data.source == "digits"
    assert spec.fit.epochs == 1
    assert spec.compile.is_empty()
    assert spec.engine == "local"
    assert not spec.uses_worker_processes()


def test_concurrency_implies_worker_processes() -> None:
    spec = parse_spec({"hypermodel": "hypermodels:build_tiny_model", "concurrency": 2})

    assert spec.uses_worker_processes()


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"oracle": "hyperband"}, True),
        ({"oracle": "hyperband", "max_trials": 5}, False),
        ({"oracle": "grid"}, True),
        ({"oracle": "grid", "max_trials": 5}, False),
        ({"max_trials": 21}, True),
    ],
)
def test_long_search_implies_worker_processes(
    settings: dict[str, object], expected: bool
) -> None:
    spec = parse_spec({"hypermodel": "hypermodels:build_tiny_model", **settings})

    assert spec.uses_worker_processes() is expected


def test_dask_engine_defaults() -> None:
    spec = parse_spec(
        {"hypermodel": "hypermodels:build_tiny_model", "engine": "dask", "concurrency": 2}
    )

    assert spec.engine == "dask"
    assert spec.dask.address is None
    assert spec.dask.n_workers is None
    assert not spec.uses_worker_processes()


def test_dask_spec_survives_json_round_trip() -> None:
    spec = load_spec(EXAMPLES / "dask.toml")

    copy = TuningSpec.model_validate_json(spec.model_dump_json())

    assert copy == spec


def test_dask_example_spec_valid() -> None:
    report = validate_spec_file(EXAMPLES / "dask.toml")

    assert report.spec.engine == "dask"
    assert report.spec.concurrency == 2
    assert report.spec.mlflow.tracking_uri == "http://127.0.0.1:5000"


def test_objective_table_with_direction() -> None:
    spec = parse_spec(
        {
            "hypermodel": "hypermodels:build_tiny_model",
            "objective": {"name": "val_f1", "direction": "max"},
        }
    )

    assert objective_from_spec(spec) == tuner_core.Objective("val_f1", "max")


# Model names around each rule of MLflow's registry: '/' and ':', and names that
# a path normalization changes or that read as '.' or '..'.
MODEL_NAMES = [
    "digits-dense",
    "a/b:c",
    "team/model",
    "model:v1",
    ".",
    "..",
    "...",
    "..digits",
    ".hidden",
    "a..b",
    "digits.",
    "model name",
    "a\\b",
    "a%b",
    "modèle",
    "",
    " ",
]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_registered_model_name_rules_match_mlflow(name: str) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_model_name
    from pydantic import ValidationError

    from tasks.spec import MlflowSpec

    try:
        _validate_model_name(name)
    except MlflowException:
        mlflow_accepts = False
    else:
        mlflow_accepts = True
    try:
        MlflowSpec(registered_model_name=name)
    except ValidationError:
        spec_accepts = False
    else:
        spec_accepts = True

    assert spec_accepts == mlflow_accepts


def test_data_path_relative_to_spec(tmp_path: Path, digits_npz: Path) -> None:
    folder = tmp_path / "jobs"
    folder.mkdir()
    (folder / "digits.npz").write_bytes(digits_npz.read_bytes())
    spec_path = folder / "job.toml"
    spec_path.write_text(
        'hypermodel = "hypermodels:build_tiny_model"\n[data]\npath = "digits.npz"\n',
        encoding="utf-8",
    )

    spec = load_spec(spec_path)

    assert spec.data.path == folder / "digits.npz"
    assert spec.data.source == "npz"
    assert spec.base_dir == folder


def test_spec_survives_json_round_trip() -> None:
    spec = load_spec(EXAMPLES / "compile_override.toml")

    copy = TuningSpec.model_validate_json(spec.model_dump_json())

    assert copy == spec


@pytest.mark.parametrize(
    ("name", "oracle", "space_size"),
    [("conditional", "bayesian", 5), ("hyperband", "hyperband", 3)],
)
def test_oracle_example_spec_valid(name: str, oracle: str, space_size: int) -> None:
    report = validate_spec_file(EXAMPLES / f"{name}.toml")
    summary_start = f"Search space summary\nDefault search space size: {space_size}\n"

    assert report.spec.oracle == oracle
    assert report.search_space["summary"].startswith(summary_start)


@pytest.mark.parametrize(
    ("oracle", "max_trials"),
    [("random", 10), ("bayesian", 10), ("grid", None), ("hyperband", None)],
)
def test_max_trials_default_by_oracle(oracle: str, max_trials: int | None) -> None:
    spec = parse_spec({"hypermodel": "hypermodels:build_tiny_model", "oracle": oracle})

    assert spec.max_trials == max_trials


def test_hyperband_planned_trials() -> None:
    spec = load_spec(EXAMPLES / "hyperband.toml")
    capped = spec.model_copy(update={"max_trials": 5})

    assert planned_num_trials(spec) == 23
    assert planned_num_trials(capped) == 5


def test_build_oracle_applies_options() -> None:
    base = {"hypermodel": "hypermodels:build_tiny_model", "objective": "val_loss"}
    bayesian_spec = parse_spec(
        {**base, "oracle": "bayesian", "num_initial_points": 2, "alpha": 1e-3}
    )
    hyperband_spec = parse_spec(
        {**base, "oracle": "hyperband", "max_epochs": 4, "factor": 2, "max_trials": 6}
    )
    space = tuner_core.HyperParameters()
    objective = tuner_core.Objective("val_loss", "min")

    bayesian = build_oracle(bayesian_spec, objective, space)
    hyperband = build_oracle(hyperband_spec, objective, space)

    assert isinstance(bayesian, tuner_core.BayesianOptimizationOracle)
    assert bayesian.num_initial_points == 2
    assert bayesian.alpha == 1e-3
    assert bayesian.beta == 2.6
    assert bayesian.max_trials == 10
    assert isinstance(hyperband, tuner_core.HyperbandOracle)
    assert (hyperband.max_epochs, hyperband.factor) == (4, 2)
    assert hyperband.max_trials == 6


def test_hypermodel_args_construct_class() -> None:
    spec = parse_spec(
        {
            "hypermodel": "tuner_core.applications:HyperXception",
            "hypermodel_args": {"input_shape": [28, 28, 1], "classes": 10},
        }
    )

    hypermodel = load_hypermodel(spec)

    assert isinstance(hypermodel, HyperXception)
    assert hypermodel.input_shape == (28, 28, 1)
    assert hypermodel.classes == 10
