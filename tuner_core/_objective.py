"""The objective a search optimizes: a metric name and a direction."""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

_MIN_NAMES = {
    "loss", "mse", "mae", "mape", "msle", "rmse", "logcosh", "log_cosh", "hinge",
    "squared_hinge", "categorical_hinge", "kld", "kl_divergence", "poisson",
    "false_positives", "false_negatives",
}
_MIN_SUFFIXES = ("loss", "_error", "crossentropy", "_hinge", "_divergence")
_MAX_NAMES = {
    "acc", "accuracy", "auc", "prc", "precision", "recall", "f1_score", "fbeta_score",
    "r2_score", "pearson_correlation", "concordance_correlation", "iou", "mean_iou",
    "binary_iou", "one_hot_iou", "one_hot_mean_iou", "true_positives",
    "true_negatives", "precision_at_recall", "recall_at_precision",
    "sensitivity_at_specificity", "specificity_at_sensitivity",
}
_MAX_SUFFIXES = ("_accuracy", "_acc", "_auc", "_precision", "_recall")
# Common Keras metric names whose direction the suffixes above give.
_SUFFIX_NAMES = (
    "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
    "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy",
    "mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error", "root_mean_squared_error",
    "binary_crossentropy", "categorical_crossentropy",
    "sparse_categorical_crossentropy",
)
# Minimum similarity (difflib's ratio) of a known name to suggest it. At 0.85,
# "val_acuracy" gets "val_accuracy" but "val_my_score" (0.83 to "val_f1_score") none.
SUGGESTION_CUTOFF = 0.85


@dataclass(frozen=True)
class Objective:
    """A metric name and whether to minimize ("min") or maximize ("max") it."""

    name: str
    direction: str

    def __post_init__(self) -> None:
        if self.direction not in ("min", "max"):
            raise ValueError(
                f"Objective {self.name!r}: direction must be 'min' or 'max', but got "
                f"direction={self.direction!r}. Pass direction='min' to minimize or "
                "'max' to maximize."
            )

    def is_better(self, value: float, reference: float | None) -> bool:
        """Return whether `value` beats `reference`; NaN never beats anything."""
        if value is None or math.isnan(value):
            return False
        if reference is None or math.isnan(reference):
            return True
        return value < reference if self.direction == "min" else value > reference

    def sort_key(self, value: float | None) -> tuple[int, float]:
        """Return a key that sorts best first, with NaN and missing values last."""
        if value is None or math.isnan(value):
            return (1, 0.0)
        return (0, value if self.direction == "min" else -value)

    def best_of(self, values: list[float]) -> tuple[int, float]:
        """Return the index and value of the best entry of a metric history."""
        best_index = min(range(len(values)), key=lambda i: (self.sort_key(values[i]), i))
        return best_index, values[best_index]


def infer_direction(name: str) -> str | None:
    """Return 'min' or 'max' for well-known metric names, else None."""
    base = name[4:] if name.startswith("val_") else name
    base = base.lower()
    if base in _MAX_NAMES or base.endswith(_MAX_SUFFIXES):
        return "max"
    if base in _MIN_NAMES or base.endswith(_MIN_SUFFIXES):
        return "min"
    return None


def closest_known_name(name: str) -> str | None:
    """Return the metric name with an inferable direction that `name` most resembles.

    Meant for a name whose direction cannot be inferred, such as the misspelled
    'val_acuracy' (which gives 'val_accuracy'). Returns None when no known name is
    close enough.
    """
    bases = sorted({*_MIN_NAMES, *_MAX_NAMES, *_SUFFIX_NAMES})
    candidates = [*bases, *(f"val_{base}" for base in bases)]
    matches = difflib.get_close_matches(
        name, candidates, n=1, cutoff=SUGGESTION_CUTOFF
    )
    return matches[0] if matches else None


def resolve_objective(objective: Any) -> Objective:
    """Turn a string or an `Objective` into an `Objective`, inferring its direction."""
    if objective is None:
        return Objective("val_loss", "min")
    if isinstance(objective, Objective):
        return objective
    if isinstance(objective, (list, tuple)):
        raise ValueError(
            f"objective must be one metric, but got objective={objective!r}. "
            "Pass a single name or Objective; several objectives are not supported."
        )
    if not isinstance(objective, str) or not objective:
        raise ValueError(
            f"objective must be a metric name or an Objective, but got "
            f"objective={objective!r}. Pass e.g. 'val_accuracy'."
        )
    direction = infer_direction(objective)
    if direction is None:
        known = closest_known_name(objective)
        hint = f"Did you mean {known!r}? If not, pass " if known else "Pass "
        raise ValueError(
            f"Cannot infer whether to minimize or maximize objective={objective!r}. "
            f"{hint}Objective({objective!r}, direction='min') or "
            f"Objective({objective!r}, direction='max')."
        )
    return Objective(objective, direction)
