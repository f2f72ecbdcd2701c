"""results_summary prints KerasTuner's text: header, then the best trials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np

import tuner_core


def build_scored_model(hp: tuner_core.HyperParameters) -> keras.Model:
    """Build a model whose `score` metric is a constant set by its hyperparameters."""
    width = hp.Choice("width", [8, 16])
    dropout = hp.Boolean("dropout")
    value = width / 64 + (0.5 if dropout else 0.0)

    def score(y_true: Any, y_pred: Any) -> Any:
        return keras.ops.mean(y_pred, axis=-1) * 0.0 + value

    layers = [keras.Input((8, 8, 1)), keras.layers.Flatten()]
    if dropout:
        layers.append(keras.layers.Dropout(0.25))
    layers.append(keras.layers.Dense(10, activation="softmax"))
    model = keras.Sequential(layers)
    model.compile(
        optimizer="adam", loss="sparse_categorical_crossentropy", metrics=[score]
    )
    return model


def _search(tuner: tuner_core.Tuner, digits: dict[str, np.ndarray]) -> None:
    tuner.search(
        digits["x"],
        digits["y"],
        epochs=1,
        validation_data=(digits["x_val"], digits["y_val"]),
    )


def test_summary_text_matches_format(
    tmp_path: Path, digits: dict[str, np.ndarray], capsys: Any
) -> None:
    tuner = tuner_core.RandomSearch(
        build_scored_model,
        objective=tuner_core.Objective("val_score", "max"),
        max_trials=4,
        seed=2,
        directory=tmp_path,
        project_name="summary",
    )
    _search(tuner, digits)
    trial_ids = {
        (t.values["width"], t.values["dropout"]): t.trial_id
        for t in tuner.oracle.trials.values()
    }
    capsys.readouterr()

    tuner.results_summary(3)

    expected = f"""\
Results summary
Results in {tmp_path / "summary"}
Showing 3 best trials
Objective(name="val_score", direction="max")

Trial {trial_ids[(16, True)]} summary
Hyperparameters:
width: 16
dropout: True
Score: 0.75

Trial {trial_ids[(8, True)]} summary
Hyperparameters:
width: 8
dropout: True
Score: 0.625

Trial {trial_ids[(16, False)]} summary
Hyperparameters:
width: 16
dropout: False
Score: 0.25
"""
    assert capsys.readouterr().out == expected


def test_summary_without_hyperparameters(
    tmp_path: Path, digits: dict[str, np.ndarray], capsys: Any
) -> None:
    def build_fixed(hp: tuner_core.HyperParameters) -> keras.Model:
        model = keras.Sequential(
            [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
        )
        model.compile(
            optimizer="adam",
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
        return model

    tuner = tuner_core.RandomSearch(
        build_fixed, objective="val_loss", max_trials=3, directory=tmp_path
    )
    _search(tuner, digits)
    score = tuner.oracle.trials["00"].score
    capsys.readouterr()

    tuner.results_summary()

    lines = capsys.readouterr().out.splitlines()
    assert len(tuner.oracle.trials) == 1
    assert lines[2:] == [
        "Showing 10 best trials",
        'Objective(name="val_loss", direction="min")',
        "",
        "Trial 00 summary",
        "Hyperparameters:",
        "default configuration",
        f"Score: {score}",
    ]
