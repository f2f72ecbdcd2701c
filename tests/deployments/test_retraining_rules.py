"""The retraining flow's rules: the tailored search space and the promotion margin."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest

from flows.champion import Champion, is_better
from flows.retraining import (
    RetrainingCause,
    skip_reason,
    tailor_hyperparameters,
)
from tasks.spec import parse_spec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def digits_spec() -> Any:
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    return parse_spec(
        {"hypermodel": "digits_model:build_model", "data": {"sample_shape": [8, 8]}},
        base_dir=EXAMPLES,
    )


def make_champion(params: dict[str, str]) -> Champion:
    return Champion(
        registered_model_name="digits",
        version="3",
        run_id="run",
        params=params,
        data_fingerprint=None,
    )


def test_tailoring_tunes_named_and_fixes_rest(digits_spec: Any) -> None:
    champion = make_champion({"units": "96", "dropout": "True", "learning_rate": "0.001"})

    entries = {e.name: e for e in tailor_hyperparameters(digits_spec, champion, ["learning_rate"])}

    assert entries["units"].type == "Fixed"
    assert entries["units"].value == 96
    assert isinstance(entries["units"].value, int)
    assert entries["dropout"].type == "Fixed"
    assert entries["dropout"].value is True
    assert entries["learning_rate"].type == "Choice"
    assert entries["learning_rate"].values == [0.01, 0.001, 0.0001]
    assert entries["learning_rate"].default == 0.001


def test_tailoring_keeps_champion_value_as_int_default(digits_spec: Any) -> None:
    champion = make_champion({"units": "96", "dropout": "False", "learning_rate": "0.01"})

    entries = {e.name: e for e in tailor_hyperparameters(digits_spec, champion, ["units"])}

    assert entries["units"].type == "Int"
    assert (entries["units"].min_value, entries["units"].max_value) == (32, 128)
    assert entries["units"].default == 96
    assert entries["learning_rate"].type == "Fixed"
    assert entries["learning_rate"].value == 0.01


@pytest.mark.parametrize(
    ("tune", "params", "match"),
    [
        (["depth"], {"units": "64"}, r"tune: \['depth'\] are not hyperparameters"),
        (["units"], {"learning_rate": "0.5"}, r"matches none of the values"),
        (["units"], {"dropout": "yes"}, r"Expected 'True' or 'False'"),
    ],
)
def test_tailoring_rejects_bad_input(
    digits_spec: Any, tune: list[str], params: dict[str, str], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        tailor_hyperparameters(digits_spec, make_champion(params), tune)


@pytest.mark.parametrize(
    ("candidate", "reference", "direction", "margin", "expected"),
    [
        (0.90, 0.80, "max", 0.05, True),
        (0.84, 0.80, "max", 0.05, False),
        (0.80, 0.80, "max", 0.0, False),
        (0.30, 0.50, "min", 0.1, True),
        (0.45, 0.50, "min", 0.1, False),
        (math.nan, 0.50, "max", 0.0, False),
        (0.10, math.nan, "max", 0.0, True),
    ],
)
def test_is_better_applies_margin(
    candidate: float, reference: float, direction: str, margin: float, expected: bool
) -> None:
    assert is_better(candidate, reference, direction, margin) is expected


@pytest.mark.parametrize(
    ("cause", "advice"),
    [
        (None, "Emit the event again only for data with new content."),
        (
            RetrainingCause(event="tuneflow.data.updated", num_samples=400),
            "Emit the event again only for data with new content.",
        ),
        (
            RetrainingCause(event="tuneflow.model.degraded", score=0.61),
            "Add newer samples to the data file, or set the monitoring threshold",
        ),
    ],
)
def test_skip_reason_advice_fits_the_cause(
    cause: RetrainingCause | None, advice: str
) -> None:
    reason = skip_reason("0123456789abcdef", "digits", "3", cause)

    assert reason.startswith(
        "Data with fingerprint 0123456789ab was already handled by digits version 3"
    )
    assert advice in reason
    if cause is not None and cause.event == "tuneflow.model.degraded":
        assert "Emit the event again" not in reason
