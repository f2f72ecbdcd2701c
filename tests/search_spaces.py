"""Search spaces shared by the oracle tests."""

from __future__ import annotations

from typing import Any

from tuner_core import HyperParameters


def conditional_space() -> HyperParameters:
    """Return the nested conditional space that every oracle must handle.

    `n_dense` Int 0..2; under n_dense in [1, 2]: `u1` and Boolean `use_do`;
    under use_do True: `rate`; under n_dense = 2: `u2`.
    """
    hp = HyperParameters()
    hp.Int("n_dense", 0, 2)
    with hp.conditional_scope("n_dense", [1, 2]):
        hp.Int("u1", 16, 128, step=16)
        hp.Boolean("use_do")
        with hp.conditional_scope("use_do", [True]):
            hp.Float("rate", 0.1, 0.5, step=0.1)
    with hp.conditional_scope("n_dense", [2]):
        hp.Int("u2", 16, 64, step=16)
    return hp


def expected_active(values: dict[str, Any]) -> set[str]:
    """Return the names that the conditional space makes active for `values`."""
    expected = {"n_dense"}
    if values["n_dense"] >= 1:
        expected |= {"u1", "use_do"}
        if values["use_do"]:
            expected.add("rate")
    if values["n_dense"] == 2:
        expected.add("u2")
    return expected
