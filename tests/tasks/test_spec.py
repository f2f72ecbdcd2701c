"""Valid specs: examples load, defaults apply, tailoring shapes the search space."""

from __future__ import annotations

from pathlib import Path

import pytest

import tuner_core
from tasks.preparation import validate_spec_file
from tasks.search_space import compile_overrides_from_spec, objective_from_spec
from tasks.spec import TuningSpec, load_spec, parse_spec

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
    assert not spec.uses_worker_processes()


def test_concurrency_implies_worker_processes() -> None:
    spec = parse_spec({"hypermodel": "hypermodels:build_tiny_model", "concurrency": 2})

    assert spec.uses_worker_processes()


def test_objective_table_with_direction() -> None:
    spec = parse_spec(
        {
            "hypermodel": "hypermodels:build_tiny_model",
            "objective": {"name": "val_f1", "direction": "max"},
        }
    )

    assert objective_from_spec(spec) == tuner_core.Objective("val_f1", "max")


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
