"""Spec files for the pipeline tests."""

from __future__ import annotations

from pathlib import Path

TINY_SPEC = """
hypermodel = "{hypermodel}"
objective = {objective}
max_trials = {max_trials}
seed = 3
{extra}

[data]
path = "{data_path}"

[fit]
epochs = {epochs}
batch_size = 64

[mlflow]
experiment = "{experiment}"
registered_model_name = "{experiment}-model"
"""


def write_tiny_spec(
    folder: Path,
    data_path: Path,
    *,
    experiment: str = "tiny",
    max_trials: int = 3,
    epochs: int = 2,
    hypermodel: str = "hypermodels:build_tiny_model",
    objective: str = '"val_accuracy"',
    extra: str = "",
) -> Path:
    """Write a spec for a tiny hypermodel on the given .npz file.

    `objective` is TOML (a quoted name or an inline table); `extra` adds
    top-level keys.
    """
    text = TINY_SPEC.format(
        hypermodel=hypermodel,
        objective=objective,
        max_trials=max_trials,
        extra=extra,
        data_path=data_path,
        epochs=epochs,
        experiment=experiment,
    )
    spec_path = folder / f"{experiment}.toml"
    spec_path.write_text(text, encoding="utf-8")
    return spec_path
