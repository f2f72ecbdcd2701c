"""Tiny hypermodels for the pipeline tests, imported through spec `hypermodel` paths."""

from __future__ import annotations

import collections
import json
import math
import os
import signal
from pathlib import Path
from typing import Any, ClassVar

import keras

from tuner_core import FailedTrialError, HyperModel, HyperParameters


def build_tiny_model(hp: HyperParameters) -> keras.Model:
    """Build a small digits classifier: 8 or 16 units, optional dropout, two rates."""
    model = keras.Sequential(
        [
            keras.Input(shape=(8, 8)),
            keras.layers.Flatten(),
            keras.layers.Dense(
                hp.Int("units", min_value=8, max_value=16, step=8), activation="relu"
            ),
        ]
    )
    if hp.Boolean("dropout"):
        model.add(keras.layers.Dropout(rate=0.25))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(
        optimizer=keras.optimizers.Adam(hp.Choice("learning_rate", [1e-2, 1e-3])),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


class FailingFitModel(HyperModel):
    """Builds the tiny model, then fails every fit, as a broken training loop would."""

    def build(self, hp: HyperParameters) -> keras.Model:
        return build_tiny_model(hp)

    def fit(self, hp: HyperParameters, model: Any, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("training diverged in this test hypermodel")


class RejectingFitModel(HyperModel):
    """Rejects 8 units with FailedTrialError, and fails each other configuration once.

    `attempts` counts the fits of each `units` value; reset it between tests.
    """

    attempts: ClassVar[collections.Counter[int]] = collections.Counter()

    def build(self, hp: HyperParameters) -> keras.Model:
        return build_tiny_model(hp)

    def fit(self, hp: HyperParameters, model: Any, *args: Any, **kwargs: Any) -> Any:
        units = hp.get("units")
        type(self).attempts[units] += 1
        if units == 8:
            raise FailedTrialError("8 units never fit in this test hypermodel")
        if type(self).attempts[units] == 1:
            raise RuntimeError("a transient error on the first attempt")
        return model.fit(*args, **kwargs)


class FailingWideModel(HyperModel):
    """Trains models of 8 units and fails every wider one."""

    def build(self, hp: HyperParameters) -> keras.Model:
        return build_tiny_model(hp)

    def fit(self, hp: HyperParameters, model: Any, *args: Any, **kwargs: Any) -> Any:
        if hp.get("units") > 8:
            raise RuntimeError(f"{hp.get('units')} units diverged in this test")
        return model.fit(*args, **kwargs)


def build_nan_model(hp: HyperParameters) -> keras.Model:
    """Build a digits classifier whose outputs are NaN when `poison` is true."""
    model = keras.Sequential(
        [
            keras.Input(shape=(8, 8)),
            keras.layers.Flatten(),
            keras.layers.Dense(8, activation="relu"),
        ]
    )
    if hp.Boolean("poison", default=True):
        model.add(keras.layers.Rescaling(scale=math.nan))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(
        optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


def build_optimizer_choice_model(hp: HyperParameters) -> keras.Model:
    """Build the tiny classifier with a tuned optimizer class and learning rate."""
    model = keras.Sequential(
        [
            keras.Input(shape=(8, 8)),
            keras.layers.Flatten(),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    optimizer = keras.optimizers.get(
        {
            "class_name": hp.Choice("optimizer", ["adam", "sgd"]),
            "config": {"learning_rate": hp.Choice("learning_rate", [1e-2, 1e-3])},
        }
    )
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


class RecordingFitModel(HyperModel):
    """Records each fit's epochs, initial epoch and starting weights.

    The recording callback runs last, so it reads the weights that the
    pipeline's own callbacks set when training begins. Reset `fits` between
    tests.
    """

    fits: ClassVar[list[dict[str, Any]]] = []

    def build(self, hp: HyperParameters) -> keras.Model:
        return build_tiny_model(hp)

    def fit(self, hp: HyperParameters, model: Any, *args: Any, **kwargs: Any) -> Any:
        record = {
            "values": dict(hp.values),
            "epochs": kwargs.get("epochs"),
            "initial_epoch": kwargs.get("initial_epoch", 0),
        }
        type(self).fits.append(record)
        callbacks = [*kwargs.pop("callbacks", []), _WeightsAtStart(record)]
        return model.fit(*args, callbacks=callbacks, **kwargs)


class _WeightsAtStart(keras.callbacks.Callback):
    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__()
        self.record = record

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.record["weights"] = [w.copy() for w in self.model.get_weights()]


class LoggedFitModel(HyperModel):
    """Appends each fit's values to a file, and kills its process at one fit.

    The environment sets the file (TUNEFLOW_TEST_FIT_LOG) and the fit, counted
    from 1 over the file's lines, that sends SIGKILL to this process before
    training (TUNEFLOW_TEST_KILL_AT_FIT, 0 for never).
    """

    def build(self, hp: HyperParameters) -> keras.Model:
        return build_tiny_model(hp)

    def fit(self, hp: HyperParameters, model: Any, *args: Any, **kwargs: Any) -> Any:
        log_file = Path(os.environ["TUNEFLOW_TEST_FIT_LOG"])
        with log_file.open("a", encoding="utf-8") as log:
            log.write(json.dumps(hp.values, sort_keys=True) + "\n")
        num_fits = len(log_file.read_text(encoding="utf-8").splitlines())
        if num_fits == int(os.environ.get("TUNEFLOW_TEST_KILL_AT_FIT", "0")):
            os.kill(os.getpid(), signal.SIGKILL)
        return model.fit(*args, **kwargs)
