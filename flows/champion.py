"""The registered champion: its version, its hyperparameter values, and its score on data.

Shared by the retraining and the monitoring flows. Every MLflow call names the
registered model and version explicitly through `MlflowClient`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from pydantic import BaseModel
from tuner_core import Boolean, Choice, Fixed, Float, HyperParameter, HyperParameters, Int

from tasks.data import DataRef, Dataset, load_dataset, make_data_ref
from tasks.spec import DataSpec, TuningSpec
from tasks.tracking import CHAMPION_ALIAS

logger = logging.getLogger(__name__)

DATA_FINGERPRINT_TAG = "tuneflow.data_fingerprint"
SOURCE_RUN_TAG = "tuneflow.source_run_id"


class ChampionNotFoundError(LookupError):
    """The registered model has no version with the alias `champion`."""


class Champion(BaseModel):
    """The version the alias `champion` points at, and the trial run that trained it.

    `params` are the trial run's MLflow params, as strings. `data_fingerprint`
    is the fingerprint of the data the champion was trained on, when recorded.
    """

    registered_model_name: str
    version: str
    run_id: str
    params: dict[str, str]
    data_fingerprint: str | None

    @property
    def model_uri(self) -> str:
        return f"models:/{self.registered_model_name}/{self.version}"


def read_champion(client: MlflowClient, registered_model_name: str) -> Champion:
    """Read the champion version, its trial run's params and its training data's fingerprint.

    Raises:
        ChampionNotFoundError: the model is not registered or has no champion.
    """
    try:
        version = client.get_model_version_by_alias(registered_model_name, CHAMPION_ALIAS)
    except MlflowException as error:
        raise ChampionNotFoundError(
            f"No version of the registered model {registered_model_name!r} has the "
            f"alias {CHAMPION_ALIAS!r} ({error.message}). Run a tuning search with "
            f"[mlflow] registered_model_name = {registered_model_name!r} first."
        ) from None

    run_id = version.tags.get(SOURCE_RUN_TAG) or version.run_id
    run = client.get_run(run_id)
    fingerprint = version.tags.get(DATA_FINGERPRINT_TAG)
    if fingerprint is None:
        fingerprint = _search_run_fingerprint(client, run.data.tags)
    return Champion(
        registered_model_name=registered_model_name,
        version=str(version.version),
        run_id=run_id,
        params=dict(run.data.params),
        data_fingerprint=fingerprint,
    )


def _search_run_fingerprint(client: MlflowClient, trial_tags: dict[str, str]) -> str | None:
    """Return the data fingerprint recorded on the parent search run of a trial run."""
    parent_run_id = trial_tags.get("mlflow.parentRunId")
    if parent_run_id is None:
        return None
    return client.get_run(parent_run_id).data.tags.get(DATA_FINGERPRINT_TAG)


def typed_values(space: HyperParameters, params: dict[str, str]) -> dict[str, Any]:
    """Convert MLflow's string params back to values of the search space's types.

    Names the space does not declare are left out, and so are declared names
    missing from `params` (conditional hyperparameters inactive in that trial).

    Raises:
        ValueError: a param cannot be read as a value of its hyperparameter.
    """
    values: dict[str, Any] = {}
    for hp in space.space:
        if hp.name in params:
            values[hp.name] = parse_value(hp, params[hp.name])
    return values


def parse_value(hp: HyperParameter, text: str) -> Any:
    """Return the value of `hp` that MLflow stored as the string `text`.

    Raises:
        ValueError: `text` is not the string form of any value `hp` can take.
    """
    if isinstance(hp, Boolean):
        if text not in ("True", "False"):
            raise ValueError(
                f"Boolean {hp.name!r}: the champion's param is {text!r}. Expected "
                "'True' or 'False'; check the trial run's params in MLflow."
            )
        return text == "True"
    if isinstance(hp, Int):
        return int(float(text))
    if isinstance(hp, Float):
        return float(text)
    candidates: list[Any] = []
    if isinstance(hp, Choice):
        candidates = list(hp.values)
    elif isinstance(hp, Fixed):
        candidates = [hp.value]
    for candidate in candidates:
        if str(candidate) == text:
            return candidate
    raise ValueError(
        f"{type(hp).__name__} {hp.name!r}: the champion's param {text!r} matches none "
        f"of the values {candidates!r}. The search space changed since the champion "
        "was trained; retrain with a spec that declares its values."
    )


def find_version_for_data(
    client: MlflowClient, registered_model_name: str, fingerprint: str
) -> str | None:
    """Return the version already registered from data with this fingerprint, if any."""
    versions = client.search_model_versions(f"name = '{registered_model_name}'")
    matching = [v for v in versions if v.tags.get(DATA_FINGERPRINT_TAG) == fingerprint]
    if not matching:
        return None
    return str(min(int(v.version) for v in matching))


def load_data_file(
    spec: TuningSpec, data_path: str | Path, holdout_fraction: float, seed: int
) -> tuple[DataRef, Dataset]:
    """Load a data file in the format of the spec's data and split off a held-out part.

    The file's format comes from its suffix (.npz or .csv); keys, label column
    and sample shape come from the spec. The returned dataset's `x_val` and
    `y_val` are the held-out part.

    Raises:
        DataError: the file cannot be read as the spec's data describes.
    """
    data_spec = DataSpec.model_validate(
        {
            **spec.data.model_dump(exclude={"source", "path", "validation_split"}),
            "path": Path(data_path).resolve(),
            "validation_split": holdout_fraction,
        }
    )
    data_ref = make_data_ref(data_spec, seed)
    return data_ref, load_dataset(data_ref)


def evaluate_model(model_uri: str, x: np.ndarray, y: np.ndarray, objective: str) -> float:
    """Load a logged Keras model and return its objective on (x, y).

    A `val_` prefix on the objective is dropped, because the data given here
    plays the role of validation data.

    Raises:
        KeyError: the model does not report the objective's metric.
    """
    import mlflow.tensorflow

    model = mlflow.tensorflow.load_model(model_uri)
    metrics = model.evaluate(x, y, verbose=0, return_dict=True)
    metric = objective.removeprefix("val_")
    if metric not in metrics:
        raise KeyError(
            f"The model {model_uri} does not report {metric!r} (objective "
            f"{objective!r}). Received metrics: {sorted(metrics)}. Compile the model "
            "with that metric, or choose an objective from the list."
        )
    score = float(metrics[metric])
    logger.info("Model %s scored %s=%.6g on %d samples.", model_uri, metric, score, len(x))
    return score


def is_better(candidate: float, reference: float, direction: str, margin: float) -> bool:
    """Return whether `candidate` beats `reference` by more than `margin`.

    A NaN candidate never wins; a finite candidate beats a NaN reference.
    """
    if math.isnan(candidate):
        return False
    if math.isnan(reference):
        return True
    improvement = candidate - reference if direction == "max" else reference - candidate
    return improvement > margin
