"""Trial time limits in tuner_core: the deadline callback and the Tuner argument."""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import tuner_core
from tuner_core import (
    HyperModel,
    HyperParameters,
    Objective,
    TrialDeadline,
    TrialStatus,
    TrialTimeoutError,
)

SLOW_BATCH_SECONDS = 0.05


def build_small_model(hp: HyperParameters) -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(hp.Choice("units", [8, 16]), activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


class BatchClock(keras.callbacks.Callback):
    """Sleeps after each training batch and records when each batch ended."""

    def __init__(self, batch_seconds: float) -> None:
        super().__init__()
        self.batch_seconds = batch_seconds
        self.batch_ends: list[float] = []

    def on_train_batch_end(
        self, batch: int, logs: dict[str, Any] | None = None
    ) -> None:
        time.sleep(self.batch_seconds)
        self.batch_ends.append(time.monotonic())


class SlowEightUnits(HyperModel):
    """Trains 8-unit models slowly, SLOW_BATCH_SECONDS a batch; others 2 epochs."""

    def build(self, hp: HyperParameters) -> keras.Model:
        return build_small_model(hp)

    def fit(self, hp: HyperParameters, model: Any, *args: Any, **kwargs: Any) -> Any:
        if hp.get("units") == 8:
            kwargs["callbacks"] = [*kwargs["callbacks"], BatchClock(SLOW_BATCH_SECONDS)]
        else:
            kwargs["epochs"] = 2
        return model.fit(*args, **kwargs)


def test_deadline_stops_fit_within_batch(digits: dict[str, np.ndarray]) -> None:
    clock = BatchClock(SLOW_BATCH_SECONDS)
    # Long enough for the first step, which traces the training function.
    deadline = TrialDeadline(3.0)

    with pytest.raises(TrialTimeoutError, match=r"past its time limit of 3 s") as error:
        tuner_core.run_trial(
            tuner_core.resolve_hypermodel(build_small_model),
            HyperParameters(),
            {"units": 8},
            objective=Objective("val_accuracy", "max"),
            x=digits["x"],
            y=digits["y"],
            validation_data=(digits["x_val"], digits["y_val"]),
            fit_kwargs={"epochs": 1000, "batch_size": 32},
            callbacks=[clock],
            deadline=deadline,
        )
    stopped = time.monotonic()

    # 1000 epochs of 10 batches would take 500 s at 0.05 s a batch.
    assert 0 < len(clock.batch_ends) < 1000
    # Only the batch running when the limit passed may end after it.
    ends_after_limit = [end for end in clock.batch_ends if end > deadline.deadline]
    assert len(ends_after_limit) <= 1
    assert error.value.timeout_seconds == 3.0
    assert error.value.elapsed_seconds >= 3.0
    time.sleep(0.3)
    assert clock.batch_ends[-1] < stopped


def test_deadline_passed_before_build() -> None:
    deadline = TrialDeadline(0.01)
    time.sleep(0.05)

    with pytest.raises(TrialTimeoutError, match=r"before the model was built"):
        tuner_core.run_trial(
            tuner_core.resolve_hypermodel(build_small_model),
            HyperParameters(),
            {"units": 8},
            objective=Objective("val_accuracy", "max"),
            deadline=deadline,
        )


def test_tuner_fails_timed_out_trial_without_retry(
    tmp_path: Path, digits: dict[str, np.ndarray]
) -> None:
    hp = HyperParameters()
    hp.Choice("units", [8, 16])
    tuner = tuner_core.GridSearch(
        SlowEightUnits(),
        objective="val_accuracy",
        hyperparameters=hp,
        max_retries_per_trial=1,
        trial_timeout_seconds=8.0,
        directory=tmp_path,
        project_name="timeouts",
    )

    tuner.search(
        digits["x"],
        digits["y"],
        epochs=200,
        batch_size=32,
        validation_data=(digits["x_val"], digits["y_val"]),
    )

    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.number)
    by_units = {t.hyperparameters.values["units"]: t for t in trials}
    timed_out = by_units[8]
    assert timed_out.status == TrialStatus.FAILED
    assert timed_out.attempts == 1
    assert timed_out.message.startswith("TrialTimeoutError: The trial ran for ")
    assert by_units[16].status == TrialStatus.COMPLETED


@pytest.mark.parametrize("limit", [0, -1.5, "60", True, float("nan"), float("inf")])
def test_tuner_rejects_bad_limit(tmp_path: Path, limit: Any) -> None:
    with pytest.raises(
        ValueError,
        match=r"trial_timeout_seconds must be a finite number above 0, but got "
        r"trial_timeout_seconds=",
    ):
        tuner_core.RandomSearch(
            build_small_model,
            objective="val_accuracy",
            trial_timeout_seconds=limit,
            directory=tmp_path,
        )


def test_timeout_error_survives_pickling() -> None:
    error = TrialTimeoutError("too slow", timeout_seconds=2.0, elapsed_seconds=2.3)

    copy = pickle.loads(pickle.dumps(error))

    assert isinstance(copy, TrialTimeoutError)
    assert isinstance(copy, tuner_core.FailedTrialError)
    assert str(copy) == "too slow"
    assert copy.timeout_seconds == 2.0
    assert copy.elapsed_seconds == 2.3
