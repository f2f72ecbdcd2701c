"""A time limit for one trial, checked while its models train."""

from __future__ import annotations

import math
import time
from typing import Any

import keras

from tuner_core._errors import TrialTimeoutError


def check_timeout_seconds(timeout_seconds: Any) -> float | None:
    """Return a trial time limit as a float, or None for no limit.

    Raises:
        ValueError: the limit is not a finite number above 0.
    """
    if timeout_seconds is None:
        return None
    is_number = isinstance(timeout_seconds, (int, float)) and not isinstance(
        timeout_seconds, bool
    )
    if not is_number or not math.isfinite(timeout_seconds) or timeout_seconds <= 0:
        raise ValueError(
            "trial_timeout_seconds must be a finite number above 0, but got "
            f"trial_timeout_seconds={timeout_seconds!r}. Pass the seconds one "
            "trial may take, e.g. 600, or None for no limit."
        )
    return float(timeout_seconds)


class TrialDeadline(keras.callbacks.Callback):
    """Keras callback that stops training once a trial runs past its time limit.

    The clock starts when the deadline is created, so one deadline passed to
    every execution of a trial limits the trial as a whole. The callback
    checks the clock when each epoch begins and ends and before every training,
    validation and prediction batch. Past the limit it sets
    `model.stop_training` and raises `TrialTimeoutError`, which ends `fit`.
    A batch that is running finishes first, so training stops within about one
    batch of the limit. It works in any thread or process, because it only
    reads a clock.

    Args:
        timeout_seconds: The trial's time limit in seconds, above 0.
    """

    def __init__(self, timeout_seconds: float) -> None:
        super().__init__()
        limit = check_timeout_seconds(timeout_seconds)
        if limit is None:
            raise ValueError(
                "trial_timeout_seconds must be a finite number above 0, but got "
                "None. Pass no deadline instead of a deadline without a limit."
            )
        self.timeout_seconds = limit
        self.started = time.monotonic()
        self.deadline = self.started + limit
        self.epoch: int | None = None

    def elapsed_seconds(self) -> float:
        return time.monotonic() - self.started

    def check(self, stage: str) -> None:
        """Raise `TrialTimeoutError` once the limit has passed, naming `stage`."""
        if time.monotonic() < self.deadline:
            return
        if self._model is not None:
            self._model.stop_training = True
        elapsed = self.elapsed_seconds()
        raise TrialTimeoutError(
            f"The trial ran for {elapsed:.1f} s, past its time limit of "
            f"{self.timeout_seconds:g} s, so training stopped {stage}. Raise "
            "trial_timeout_seconds, or train fewer epochs or a smaller model.",
            timeout_seconds=self.timeout_seconds,
            elapsed_seconds=elapsed,
        )

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch
        self.check(f"before epoch {epoch}")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.check(f"after epoch {epoch}")

    # Batch checks use the *_begin hooks: a callback with a *_batch_end hook
    # makes Keras turn each batch's metrics into Python numbers, which cost
    # about 5% of a small model's fit (measured on 2 CPU cores).
    def on_train_batch_begin(
        self, batch: int, logs: dict[str, Any] | None = None
    ) -> None:
        self.check(f"in epoch {self.epoch}, before batch {batch}")

    def on_test_batch_begin(
        self, batch: int, logs: dict[str, Any] | None = None
    ) -> None:
        self.check(f"while validating epoch {self.epoch}")

    def on_predict_batch_begin(
        self, batch: int, logs: dict[str, Any] | None = None
    ) -> None:
        self.check("while predicting")
