"""A Keras callback that ends a search when its total epoch budget is spent."""

from __future__ import annotations

from typing import Any

import keras


class BudgetSpent(BaseException):
    """Exception for a trial that starts training after the epoch budget is spent.

    It derives from BaseException because tuner_core and KerasTuner record any
    Exception raised in a trial as a failed trial and go on with the search.
    """


class EpochBudget(keras.callbacks.Callback):
    """Counts the epochs a search trains and the best objective seen after each.

    Every epoch of every trial counts, including the epochs of a Hyperband trial
    that continues an earlier one and of a trial that a pruner stops. After the
    epoch that spends the budget the callback stops that trial's training, and
    a later trial that starts training raises `BudgetSpent`.

    Args:
        max_epochs: The total number of epochs the search may train.
        objective: The metric whose maximum is recorded. Defaults to
            "val_accuracy".
    """

    def __init__(self, max_epochs: int, objective: str = "val_accuracy") -> None:
        super().__init__()
        self.max_epochs = max_epochs
        self.objective = objective
        self.epochs_spent = 0
        self.best: float | None = None
        # best_curve[i] is the best objective after i + 1 epochs were spent.
        self.best_curve: list[float] = []

    def __deepcopy__(self, memo: dict[int, Any]) -> EpochBudget:
        # KerasTuner deep-copies the search's callbacks for each trial, and the
        # count must run across trials.
        memo[id(self)] = self
        return self

    @property
    def spent(self) -> bool:
        return self.epochs_spent >= self.max_epochs

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.spent:
            raise BudgetSpent(f"the budget of {self.max_epochs} epochs is spent")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = float((logs or {})[self.objective])
        self.epochs_spent += 1
        self.best = value if self.best is None else max(self.best, value)
        self.best_curve.append(self.best)
        if self.spent:
            self.model.stop_training = True
