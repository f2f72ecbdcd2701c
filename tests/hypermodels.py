"""Tiny hypermodels for the pipeline tests, imported through spec `hypermodel` paths."""

from __future__ import annotations

import collections
import json
import math
import os
import signal
import time
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
    """Records each fit's epochs, initial epoch, starting weights and optimizer state.

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
        optimizer = self.model.optimizer
        self.record["optimizer"] = (
            [v.numpy() for v in optimizer.variables] if optimizer.built else None
        )


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


class SlowFitModel(HyperModel):
    """Trains the tiny model, slowly or hung for chosen `units`, logging each batch.

    The environment sets the log file (TUNEFLOW_TEST_BATCH_LOG), which gets one
    JSON line when a fit starts and one per finished training batch, with the
    units, the process id and the wall-clock time. A model whose units are in
    TUNEFLOW_TEST_SLOW_UNITS (a comma-separated list) sleeps 0.1 s after every
    batch and trains the spec's epochs. One whose units equal
    TUNEFLOW_TEST_HANG_UNITS sleeps 60 s before its first batch, as a hung step
    would. Others train 2 epochs.
    """

    def build(self, hp: HyperParameters) -> keras.Model:
        return build_tiny_model(hp)

    def fit(self, hp: HyperParameters, model: Any, *args: Any, **kwargs: Any) -> Any:
        units = str(hp.get("units"))
        slow = units in os.environ.get("TUNEFLOW_TEST_SLOW_UNITS", "").split(",")
        hang = units == os.environ.get("TUNEFLOW_TEST_HANG_UNITS")
        if not slow and not hang:
            kwargs["epochs"] = 2
        recorder = _BatchRecorder(
            Path(os.environ["TUNEFLOW_TEST_BATCH_LOG"]),
            units=int(units),
            batch_seconds=0.1 if slow else 0.0,
            hang_seconds=60.0 if hang else 0.0,
        )
        callbacks = [*kwargs.pop("callbacks", []), recorder]
        return model.fit(*args, callbacks=callbacks, **kwargs)


class _BatchRecorder(keras.callbacks.Callback):
    """Logs fit starts and batch ends, and sleeps per batch or before the first."""

    def __init__(
        self, log_file: Path, *, units: int, batch_seconds: float, hang_seconds: float
    ) -> None:
        super().__init__()
        self.log_file = log_file
        self.units = units
        self.batch_seconds = batch_seconds
        self.hang_seconds = hang_seconds

    def _record(self, event: str) -> None:
        entry = {
            "event": event,
            "units": self.units,
            "pid": os.getpid(),
            "time": time.time(),
        }
        with self.log_file.open("a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._record("fit")

    def on_train_batch_begin(
        self, batch: int, logs: dict[str, Any] | None = None
    ) -> None:
        if self.hang_seconds:
            hang_seconds, self.hang_seconds = self.hang_seconds, 0.0
            time.sleep(hang_seconds)

    def on_train_batch_end(
        self, batch: int, logs: dict[str, Any] | None = None
    ) -> None:
        time.sleep(self.batch_seconds)
        self._record("batch")


class GlobalStateModel(HyperModel):
    """Records the Keras global state each build starts from, then changes it.

    Each build appends to TUNEFLOW_TEST_STATE_LOG a JSON line with the process
    id, CUDA_VISIBLE_DEVICES, `keras.config.epsilon()`,
    `keras.config.image_data_format()` and the automatic name of a new Dense
    layer. After building, it sets epsilon to 0.5 and the image data format to
    "channels_first", which a later trial would see if nothing restored them.
    """

    def build(self, hp: HyperParameters) -> keras.Model:
        entry = {
            "pid": os.getpid(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "epsilon": keras.config.epsilon(),
            "image_data_format": keras.config.image_data_format(),
            "layer_name": keras.layers.Dense(1).name,
            "units": hp.get("units") if "units" in hp.values else None,
        }
        model = build_tiny_model(hp)
        keras.config.set_epsilon(0.5)
        keras.config.set_image_data_format("channels_first")
        entry["epsilon_after_build"] = keras.config.epsilon()
        log_file = Path(os.environ["TUNEFLOW_TEST_STATE_LOG"])
        with log_file.open("a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")
        return model


class TrialOutcomesModel(HyperModel):
    """Trains 8 units, and fails each wider model in another way a trial can fail.

    16 units raise a RuntimeError in fit. 24 units train for 1,000 epochs,
    sleeping 0.5 s after every batch, until the spec's trial_timeout_seconds
    stops them. 32 units compile without the accuracy metric, so an objective
    on val_accuracy names a metric that the model does not report.
    """

    def build(self, hp: HyperParameters) -> keras.Model:
        model = build_tiny_model(hp)
        if hp.get("units") != 32:
            return model
        # A new model, because compiling the tiny model again without metrics
        # keeps its accuracy metric (Keras 3.15).
        bare = keras.Sequential(
            [
                keras.Input(shape=(8, 8)),
                keras.layers.Flatten(),
                keras.layers.Dense(10, activation="softmax"),
            ]
        )
        bare.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        return bare

    def fit(self, hp: HyperParameters, model: Any, *args: Any, **kwargs: Any) -> Any:
        units = hp.get("units")
        if units == 16:
            raise RuntimeError("16 units diverged in this test")
        if units == 24:
            slow = keras.callbacks.LambdaCallback(
                on_train_batch_end=lambda batch, logs: time.sleep(0.5)
            )
            kwargs["epochs"] = 1000
            kwargs["callbacks"] = [*kwargs.get("callbacks", []), slow]
        return model.fit(*args, **kwargs)
