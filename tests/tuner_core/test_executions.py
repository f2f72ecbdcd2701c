"""executions_per_trial: every execution trains, and the trial score is their mean."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import tuner_core


def build_model(hp: tuner_core.HyperParameters) -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(hp.Choice("units", [8, 16]), activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


class ExecutionRecorder(keras.callbacks.Callback):
    """Keeps each fit's optimizer object, its iterations and its val_loss history."""

    def __init__(self) -> None:
        super().__init__()
        self.optimizers: list[Any] = []
        self.iterations_at_start: list[int] = []
        self.iterations_at_end: list[int] = []
        self.val_losses: list[list[float]] = []

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.optimizers.append(self.model.optimizer)
        self.iterations_at_start.append(int(self.model.optimizer.iterations.numpy()))
        self.val_losses.append([])

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.val_losses[-1].append(float((logs or {})["val_loss"]))

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.iterations_at_end.append(int(self.model.optimizer.iterations.numpy()))


def test_executions_train_with_own_optimizer(
    tmp_path: Path, digits: dict[str, np.ndarray]
) -> None:
    user_optimizer = keras.optimizers.Adam(1e-3)
    tuner = tuner_core.RandomSearch(
        build_model,
        optimizer=user_optimizer,
        objective="val_loss",
        max_trials=2,
        executions_per_trial=2,
        seed=1,
        directory=tmp_path,
    )
    recorder = ExecutionRecorder()
    tuner.search(
        digits["x"],
        digits["y"],
        epochs=2,
        batch_size=100,
        validation_data=(digits["x_val"], digits["y_val"]),
        callbacks=[recorder],
    )

    assert len(recorder.optimizers) == 4
    for index, optimizer in enumerate(recorder.optimizers):
        assert isinstance(optimizer, keras.optimizers.Adam)
        assert optimizer is not user_optimizer
        others = recorder.optimizers[:index] + recorder.optimizers[index + 1 :]
        assert all(optimizer is not other for other in others)
    assert recorder.iterations_at_start == [0, 0, 0, 0]
    # 300 training rows in batches of 100 for 2 epochs.
    assert recorder.iterations_at_end == [6, 6, 6, 6]
    assert int(user_optimizer.iterations.numpy()) == 0
    assert not user_optimizer.built

    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.number)
    for index, trial in enumerate(trials):
        histories = recorder.val_losses[2 * index : 2 * index + 2]
        expected_scores = [min(history) for history in histories]
        assert trial.execution_scores == pytest.approx(expected_scores, rel=1e-6)
        assert trial.score == pytest.approx(np.mean(expected_scores), rel=1e-6)
        assert trial.optimizer["class_name"] == "Adam"


def test_execution_scores_saved(tmp_path: Path, digits: dict[str, np.ndarray]) -> None:
    tuner = tuner_core.RandomSearch(
        build_model,
        objective="val_loss",
        max_trials=1,
        executions_per_trial=3,
        seed=2,
        directory=tmp_path,
        project_name="saved",
    )
    tuner.search(
        digits["x"],
        digits["y"],
        epochs=1,
        validation_data=(digits["x_val"], digits["y_val"]),
    )

    trial = tuner.oracle.trials["00"]
    assert len(trial.execution_scores) == 3
    assert "execution_scores" not in trial.metrics
    reloaded = tuner_core.RandomSearch(
        build_model,
        objective="val_loss",
        max_trials=1,
        executions_per_trial=3,
        seed=2,
        directory=tmp_path,
        project_name="saved",
    )
    assert reloaded.oracle.trials["00"].execution_scores == trial.execution_scores
    reloaded_score = reloaded.oracle.trials["00"].score
    assert math.isclose(reloaded_score, np.mean(trial.execution_scores))
