"""The trial's optimizer state: created before fit without changing training, and
kept from the best epoch with the weights."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

import tuner_core
from tuner_core import HyperParameters, Objective
from tuner_core._training import (
    build_optimizer_state,
    optimizer_state,
    restore_optimizer_state,
)


class OptimizerStateAtStart(keras.callbacks.Callback):
    """Records whether the optimizer had its variables when training began.

    Also keeps the weights at the end of training.
    """

    def __init__(self) -> None:
        super().__init__()
        self.built_at_start: bool | None = None
        self.final_weights: list[np.ndarray] = []

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.built_at_start = self.model.optimizer.built

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.final_weights = self.model.get_weights()


def build_dense(hp: HyperParameters) -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(hp.Int("units", 8, 16, step=8, default=16), activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


class Unbuilt(keras.Model):
    """A subclassed model, which has no variables before its first call."""

    def __init__(self) -> None:
        super().__init__()
        self.flatten = keras.layers.Flatten()
        self.dense = keras.layers.Dense(10, activation="softmax")

    def call(self, inputs: Any) -> Any:
        return self.dense(self.flatten(inputs))


def build_unbuilt(hp: HyperParameters) -> keras.Model:
    model = Unbuilt()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def train(
    build: Any,
    digits: dict[str, np.ndarray],
    objective: Objective | None = None,
    **kwargs: Any,
) -> Any:
    probe = OptimizerStateAtStart()
    outcome = tuner_core.run_trial(
        tuner_core.resolve_hypermodel(build),
        HyperParameters(),
        {"units": 16},
        objective=objective or Objective("val_loss", "min"),
        x=digits["x"],
        y=digits["y"],
        validation_data=(digits["x_val"], digits["y_val"]),
        fit_kwargs={"epochs": 2, "batch_size": 32, "shuffle": False},
        callbacks=[probe],
        seed=3,
        **kwargs,
    )
    return outcome, probe


def test_trial_builds_optimizer_before_fit(digits: dict[str, np.ndarray]) -> None:
    outcome, probe = train(build_dense, digits)

    assert probe.built_at_start is True
    # Adam keeps two slots per trainable variable, plus its step counter.
    slots = [
        v for v in outcome.model.optimizer.variables if v.shape != () and v.ndim > 0
    ]
    assert len(slots) == 2 * len(outcome.model.trainable_variables)


def test_prebuilt_optimizer_same_weights(
    digits: dict[str, np.ndarray],
) -> None:
    prebuilt, probe = train(build_dense, digits)

    keras.backend.clear_session(free_memory=False)
    keras.utils.set_random_seed(3)
    model = build_dense(HyperParameters())
    assert not model.optimizer.built
    model.fit(
        digits["x"],
        digits["y"],
        validation_data=(digits["x_val"], digits["y_val"]),
        epochs=2,
        batch_size=32,
        shuffle=False,
        verbose=0,
    )
    history = model.history.history

    for name in ("loss", "val_loss", "accuracy"):
        np.testing.assert_allclose(prebuilt.history[name], history[name], rtol=1e-6)
    assert len(probe.final_weights) == len(model.get_weights()) == 4
    for ours, theirs in zip(probe.final_weights, model.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)


def test_unbuilt_model_is_left_to_keras(digits: dict[str, np.ndarray]) -> None:
    model = build_unbuilt(HyperParameters())
    build_optimizer_state(model)
    assert not model.optimizer.built

    outcome, probe = train(build_unbuilt, digits)

    assert probe.built_at_start is False
    assert outcome.model.optimizer.built
    assert np.isfinite(outcome.score)


def test_best_epoch_keeps_its_optimizer_state(digits: dict[str, np.ndarray]) -> None:
    # The training loss falls each epoch, so "max" makes the first epoch best.
    outcome, probe = train(build_dense, digits, objective=Objective("loss", "max"))

    assert outcome.best_epoch == 0
    steps_per_epoch = -(-len(digits["x"]) // 32)
    assert int(outcome.model.optimizer.iterations.numpy()) == steps_per_epoch
    # The weights are the first epoch's too, not those training ended with.
    final = probe.final_weights
    assert any(
        not np.allclose(best, last)
        for best, last in zip(outcome.model.get_weights(), final, strict=True)
    )


def test_restore_rejects_other_optimizer(digits: dict[str, np.ndarray]) -> None:
    adam = build_dense(HyperParameters())
    build_optimizer_state(adam)
    state = optimizer_state(adam)
    assert state is not None

    sgd = build_dense(HyperParameters())
    sgd.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    assert restore_optimizer_state(sgd, state) is False
    assert int(sgd.optimizer.iterations.numpy()) == 0

    other = build_dense(HyperParameters())
    state[0] = np.asarray(7, dtype=state[0].dtype)
    assert restore_optimizer_state(other, state) is True
    assert int(other.optimizer.iterations.numpy()) == 7
