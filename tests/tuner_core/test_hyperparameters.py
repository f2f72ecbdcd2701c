"""HyperParameters semantics: defaults, values, overrides, conditions, configs."""

from __future__ import annotations

import numpy as np
import pytest

import tuner_core
from tuner_core import HyperParameters


def test_defaults_of_every_type() -> None:
    hp = HyperParameters()
    assert hp.Int("i", 3, 9) == 3
    assert hp.Float("f", 0.5, 2.0) == 0.5
    assert hp.Choice("c", ["a", "b"]) == "a"
    assert hp.Boolean("b") is False
    assert hp.Fixed("x", 7) == 7
    assert hp.Int("j", 3, 9, default=5) == 5
    assert hp.values == {"i": 3, "f": 0.5, "c": "a", "b": False, "x": 7, "j": 5}


def test_user_entry_overrides_declaration() -> None:
    hp = HyperParameters()
    hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
    hp.mark_overrides()
    hp.values = {"learning_rate": 0.003}
    assert hp.Choice("learning_rate", [1e-2, 1e-3]) == 0.003
    assert len(hp.space) == 1


def test_redeclaring_differently_raises() -> None:
    hp = HyperParameters()
    hp.Int("units", 32, 128, step=32)
    assert hp.Int("units", 32, 128, step=32) == 32
    with pytest.raises(tuner_core.SearchSpaceConflictError, match=r"'units'.*conditional_scope"):
        hp.Choice("units", [16, 32])


def test_conditional_scope_inactive_is_none() -> None:
    hp = HyperParameters()
    n_dense = hp.Int("n_dense", 0, 2)
    assert n_dense == 0
    with hp.conditional_scope("n_dense", [1, 2]):
        assert hp.Int("u1", 16, 128, step=16) is None
    assert "u1" not in hp.values
    hp.values = {"n_dense": 2}
    with hp.conditional_scope("n_dense", [1, 2]):
        assert hp.Int("u1", 16, 128, step=16) == 16
    assert hp.values == {"n_dense": 2, "u1": 16}
    assert hp.is_active("u1")


def test_conditional_scope_unknown_parent() -> None:
    hp = HyperParameters()
    with pytest.raises(ValueError, match="parent_name='missing' is not defined"):
        with hp.conditional_scope("missing", [1]):
            pass


def test_name_scope_prefixes_names() -> None:
    hp = HyperParameters()
    with hp.name_scope("block1"):
        hp.Int("units", 1, 4)
    assert hp.names() == ["block1/units"]


@pytest.mark.parametrize(
    ("declare", "expected"),
    [
        (lambda hp: hp.Int("units", 32, 128, step=32), {32, 64, 96, 128}),
        (lambda hp: hp.Float("drop", 0.0, 0.5, step=0.25), {0.0, 0.25, 0.5}),
        (lambda hp: hp.Int("k", 5, 5), {5}),
        (lambda hp: hp.Float("r", 0.1, 0.5, step=0.1), {0.1, 0.2, 0.3, 0.4, 0.5}),
    ],
)
def test_sampling_covers_inclusive_grid(declare: object, expected: set[float]) -> None:
    hp = HyperParameters()
    declare(hp)  # type: ignore[operator]
    entry = hp.space[0]
    rng = np.random.default_rng(0)
    drawn = {entry.random_sample(rng) for _ in range(400)}
    assert drawn == expected


def test_log_sampling_stays_in_range() -> None:
    entry = tuner_core.Float("lr", 1e-4, 1e-2, sampling="log")
    rng = np.random.default_rng(1)
    drawn = [entry.random_sample(rng) for _ in range(500)]
    assert min(drawn) >= 1e-4
    assert max(drawn) <= 1e-2
    below_1e3 = sum(value < 1e-3 for value in drawn)
    assert 150 < below_1e3 < 350, "log sampling puts about half the draws below 1e-3"


def test_config_round_trip_every_type() -> None:
    hp = HyperParameters()
    hp.Int("i", 1, 9, step=2, default=3)
    hp.Float("f", 1e-3, 1.0, sampling="log")
    hp.Choice("c", [1, 2, 3], ordered=False)
    hp.Boolean("b", default=True)
    hp.Fixed("x", "relu")
    with hp.conditional_scope("b", [True]):
        hp.Float("rate", 0.1, 0.5, step=0.1)
    clone = HyperParameters.from_config(hp.get_config())
    assert clone.get_config() == hp.get_config()
    assert clone.values == hp.values
    assert [type(e).__name__ for e in clone.space] == ["Int", "Float", "Choice", "Boolean", "Fixed", "Float"]
    assert clone.copy().get_config() == hp.get_config()


def test_get_unknown_name_raises() -> None:
    hp = HyperParameters()
    hp.Int("units", 1, 3)
    with pytest.raises(KeyError, match="'nope' does not exist"):
        hp.get("nope")
