"""Objective direction inference and validation."""

from __future__ import annotations

import pytest

from tuner_core import Objective, infer_direction, resolve_objective
from tuner_core._objective import closest_known_name


@pytest.mark.parametrize(
    ("name", "direction"),
    [
        ("val_loss", "min"),
        ("loss", "min"),
        ("val_accuracy", "max"),
        ("sparse_categorical_accuracy", "max"),
        ("val_mean_squared_error", "min"),
        ("val_sparse_categorical_crossentropy", "min"),
        ("val_f1_score", "max"),
        ("r2_score", "max"),
        ("val_pearson_correlation", "max"),
        ("val_auc", "max"),
        ("mae", "min"),
    ],
)
def test_direction_inferred(name: str, direction: str) -> None:
    assert resolve_objective(name) == Objective(name, direction)


def test_unknown_metric_asks_for_direction() -> None:
    with pytest.raises(ValueError, match=r"objective='val_custom'.*direction='min'"):
        resolve_objective("val_custom")


def test_unrelated_metric_error_has_no_hint() -> None:
    with pytest.raises(ValueError) as caught:
        resolve_objective("val_my_score")

    assert "Did you mean" not in str(caught.value)


@pytest.mark.parametrize(
    ("name", "suggested"),
    [
        ("val_acuracy", "val_accuracy"),
        ("accuarcy", "accuracy"),
        ("val_los", "val_loss"),
        ("val-accuracy", "val_accuracy"),
        ("val_sparse_categorical_acuracy", "val_sparse_categorical_accuracy"),
    ],
)
def test_misspelled_metric_suggests_known_name(name: str, suggested: str) -> None:
    assert infer_direction(name) is None
    assert infer_direction(suggested) is not None

    with pytest.raises(
        ValueError,
        match=rf"Cannot infer whether to minimize or maximize objective='{name}'\. "
        rf"Did you mean '{suggested}'\? If not, pass Objective\('{name}', "
        r"direction='min'\)",
    ):
        resolve_objective(name)


@pytest.mark.parametrize("name", ["val_my_score", "val_custom", "val_f1", "score"])
def test_unrelated_metric_gets_no_suggestion(name: str) -> None:
    assert closest_known_name(name) is None


def test_direction_must_be_min_or_max() -> None:
    with pytest.raises(ValueError, match=r"direction='up'.*'min'"):
        Objective("val_loss", "up")


def test_nan_ranks_last_both_directions() -> None:
    for direction in ("min", "max"):
        objective = Objective("m", direction)
        ranked = sorted([float("nan"), 1.0, 2.0], key=objective.sort_key)
        assert ranked[:2] == ([1.0, 2.0] if direction == "min" else [2.0, 1.0])
