"""An entry whose values differ in kind from the build function's declaration.

Building the model succeeds with such an entry, so only this check stops a
search in which every trial trains the same model under different values.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import tuner_core
from tasks.preparation import validate_spec_file
from tasks.spec import SpecError

# hypermodels:build_tiny_model declares units (Int), dropout (Boolean) and
# learning_rate (Choice of floats).
SPEC = """
hypermodel = "hypermodels:build_tiny_model"

[data]
sample_shape = [8, 8]

[[hyperparameters]]
{entry}
"""


def write_spec(tmp_path: Path, entry: str) -> Path:
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(entry=entry), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("entry", "pattern"),
    [
        (
            'name = "dropout"\ntype = "Float"\nmin_value = 0.0\nmax_value = 0.5',
            r"hyperparameters\[0\]: this Float entry gives 'dropout' floats, but the "
            r"build function declares 'dropout' as Boolean \(true or false\)\. "
            r"Received: type='Float'\..* Use type = 'Boolean'",
        ),
        (
            'name = "dropout"\ntype = "Choice"\nvalues = ["yes", "no"]',
            r"hyperparameters\[0\]: this Choice entry gives 'dropout' strings, but the "
            r"build function declares 'dropout' as Boolean \(true or false\)\. "
            r"Received: type='Choice'\..* Use type = 'Boolean', as the build function "
            r"does, or write values as true or false\.",
        ),
    ],
    ids=["float-for-boolean", "strings-for-boolean"],
)
def test_other_kind_rejected(tmp_path: Path, entry: str, pattern: str) -> None:
    with pytest.raises(SpecError, match=pattern) as caught:
        validate_spec_file(write_spec(tmp_path, entry))

    assert len(caught.value.problems) == 1, caught.value.problems


def test_numbers_of_another_type_pass(tmp_path: Path) -> None:
    # A Choice of whole numbers for an Int declaration is another type with
    # values of the same kind.
    entry = 'name = "units"\ntype = "Choice"\nvalues = [8, 16]'
    with warnings.catch_warnings():
        warnings.simplefilter("error", tuner_core.OverrideTypeWarning)
        report = validate_spec_file(write_spec(tmp_path, entry))

    assert report.spec.hyperparameters[0].type == "Choice"


def test_library_warns_with_both_declarations() -> None:
    def build(hp: tuner_core.HyperParameters) -> object:
        hp.Boolean("dropout")
        hp.Int("units", 8, 16, step=8)
        return None

    overrides = tuner_core.HyperParameters()
    overrides.Float("dropout", 0.0, 0.5)
    overrides.Int("units", 8, 32, step=8)
    with pytest.warns(
        tuner_core.OverrideTypeWarning, match="'dropout' is given as Float"
    ) as caught:
        tuner_core.explore_search_space(tuner_core.resolve_hypermodel(build), overrides)

    conflicts = caught[0].message.conflicts
    assert list(conflicts) == ["dropout"]
    override, declared = conflicts["dropout"]
    assert type(override).__name__ == "Float"
    assert type(declared).__name__ == "Boolean"
