"""Bad search-space input: one clear error naming the field, the value and the fix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tuner_core
from tuner_core import HyperParameters

BAD_DECLARATIONS: list[tuple[str, Callable[[HyperParameters], Any], str]] = [
    ("min above max", lambda hp: hp.Int("units", 128, 32), r"min_value=128, max_value=32\. Swap"),
    (
        "float min above max",
        lambda hp: hp.Float("lr", 0.1, 0.01),
        r"min_value must be <= max_value.*min_value=0\.1",
    ),
    (
        "log with zero minimum",
        lambda hp: hp.Float("lr", 0.0, 0.1, sampling="log"),
        r"'lr'.*needs min_value > 0.*min_value=0\.0.*sampling='linear'",
    ),
    (
        "reverse_log with negative minimum",
        lambda hp: hp.Float("lr", -1.0, 0.1, sampling="reverse_log"),
        r"min_value=-1\.0",
    ),
    ("zero step", lambda hp: hp.Int("units", 1, 8, step=0), r"step must be > 0.*step=0"),
    ("negative step", lambda hp: hp.Float("d", 0.0, 1.0, step=-0.1), r"step=-0\.1"),
    (
        "non-integral Int bound",
        lambda hp: hp.Int("units", 1.5, 8),
        r"'units'.*min_value must be an integer.*min_value=1\.5.*use Float",
    ),
    ("empty Choice", lambda hp: hp.Choice("act", []), r"'act'.*non-empty list.*values=\[\]"),
    (
        "mixed Choice types",
        lambda hp: hp.Choice("lr", [1, 0.1]),
        r"'lr'.*one type.*values=\[1, 0\.1\].*all as floats",
    ),
    ("None in Choice", lambda hp: hp.Choice("act", ["relu", None]), r"must not contain None"),
    (
        "Choice default not in values",
        lambda hp: hp.Choice("act", ["relu", "tanh"], default="gelu"),
        r"default='gelu'.*Pick a default",
    ),
    (
        "unknown sampling",
        lambda hp: hp.Float("lr", 0.1, 1.0, sampling="exp"),
        r"sampling='exp'.*'linear'",
    ),
    (
        "Int default outside range",
        lambda hp: hp.Int("units", 1, 8, default=9),
        r"default=9 is outside \[1, 8\]",
    ),
    ("Boolean default not bool", lambda hp: hp.Boolean("b", default="yes"), r"default='yes'"),
    (
        "fixed and tuned name",
        lambda hp: (hp.Fixed("lr", 0.1), hp.Float("lr", 0.01, 0.1)),
        r"'lr' is declared twice.*Fixed.*Float",
    ),
    (
        "int then choice",
        lambda hp: (hp.Int("units", 1, 8), hp.Choice("units", [1, 2])),
        r"'units' is declared twice",
    ),
]


@pytest.mark.parametrize(
    ("declare", "pattern"),
    [pytest.param(d, p, id=case) for case, d, p in BAD_DECLARATIONS],
)
def test_bad_declaration_message(declare: Callable[[HyperParameters], Any], pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        declare(HyperParameters())


def test_unknown_type_in_config() -> None:
    config = {"space": [{"class_name": "Integer", "config": {"name": "x"}}], "values": {}}
    with pytest.raises(ValueError, match=r"'Integer'.*\['Boolean', 'Choice'"):
        HyperParameters.from_config(config)


@pytest.mark.parametrize("max_trials", [0, -2])
def test_max_trials_below_one(max_trials: int, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=rf"max_trials={max_trials}\. Pass the number"):
        tuner_core.RandomSearch(lambda hp: None, max_trials=max_trials, directory=tmp_path)


def test_bad_hypermodel() -> None:
    with pytest.raises(ValueError, match=r"hypermodel=42.*build_model\(hp\)"):
        tuner_core.resolve_hypermodel(42)
