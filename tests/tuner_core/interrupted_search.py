"""A search of 8 trials that test_resume.py runs in a subprocess and may kill.

Usage: python interrupted_search.py DIRECTORY LOG_FILE KILL_AT_TRIAL

Each trial appends its hyperparameter values, as one JSON line, to LOG_FILE
before training. The trial whose line is number KILL_AT_TRIAL (counting from
1, 0 for never) sends SIGKILL to this process after its first epoch.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

import tuner_core


class KillAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


class LoggedHyperModel(tuner_core.HyperModel):
    def __init__(self, log_file: Path, kill_at_trial: int) -> None:
        super().__init__(name="logged")
        self.log_file = log_file
        self.kill_at_trial = kill_at_trial

    def build(self, hp: tuner_core.HyperParameters) -> keras.Model:
        model = keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(hp.Int("units", 4, 64, step=4), activation="relu"),
                keras.layers.Dense(1),
            ]
        )
        model.compile(optimizer="adam", loss="mse")
        return model

    def fit(
        self, hp: tuner_core.HyperParameters, model: Any, *args: Any, **kwargs: Any
    ) -> Any:
        with self.log_file.open("a") as log:
            log.write(json.dumps(hp.values, sort_keys=True) + "\n")
        trial_count = len(self.log_file.read_text().splitlines())
        callbacks = list(kwargs.pop("callbacks", []))
        if trial_count == self.kill_at_trial:
            callbacks.append(KillAfterFirstEpoch())
        return model.fit(*args, callbacks=callbacks, **kwargs)


def main(directory: str, log_file: str, kill_at_trial: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((64, 8)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    tuner = tuner_core.RandomSearch(
        LoggedHyperModel(Path(log_file), int(kill_at_trial)),
        objective="val_loss",
        max_trials=8,
        seed=3,
        directory=directory,
        project_name="interrupted",
    )
    tuner.search(x, y, epochs=2, validation_data=(x, y))


if __name__ == "__main__":
    main(*sys.argv[1:])
