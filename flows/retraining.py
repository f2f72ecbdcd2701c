"""The retraining flow: tune a challenger on new data and promote it only if it wins.

The challenger's search re-tunes the hyperparameters the caller names and
fixes every other one at the champion's value. Champion and challenger are
then scored on the same held-out part of the new data, and the alias
`champion` moves only when the challenger is better by more than a margin.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from pydantic import BaseModel, Field
from tuner_core import Fixed, HyperParameter

from deployments.events import MODEL_DEGRADED_EVENT
from flows.champion import (
    DATA_FINGERPRINT_TAG,
    Champion,
    evaluate_model,
    find_version_for_data,
    is_better,
    load_data_file,
    read_champion,
    typed_values,
)
from flows.tuning import run_search
from tasks.data import DataRef, Dataset
from tasks.preparation import artifact_key
from tasks.search_space import build_search_space, hyperparameters_from_spec
from tasks.spec import HyperparameterSpec, TuningSpec, load_spec, parse_spec
from tasks.tracking import (
    CHALLENGER_PURPOSE,
    CHAMPION_ALIAS,
    KIND_TAG,
    PURPOSE_TAG,
    ensure_experiment,
    resolve_tracking_uri,
)

Decision = Literal["promoted", "rejected", "skipped"]

DECISION_TAG = "tuneflow.decision"
REASON_TAG = "tuneflow.reason"
CHAMPION_SCORE_TAG = "tuneflow.champion_score"
CHALLENGER_SCORE_TAG = "tuneflow.challenger_score"
RETRAINING_RUN_TAG = "tuneflow.retraining_run_id"


class RetrainingPolicy(BaseModel):
    """Rules for judging a challenger: the held-out split and the margin to beat.

    `margin` is in the objective's units: with val_accuracy and margin 0.01, the
    challenger must score more than 0.01 above the champion. `holdout_seed`
    fixes the split, so champion and challenger see the same held-out samples.
    """

    margin: float = Field(default=0.0, ge=0.0)
    holdout_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    holdout_seed: int = Field(default=0, ge=0)


class RetrainingCause(BaseModel):
    """The event that started a retraining run, as its deployment trigger passes it.

    `num_samples` comes with a new-data event and `score` with a degradation
    event; both keep their JSON types through the trigger's templates.
    """

    event: str
    num_samples: int | None = None
    score: float | None = None


class RetrainingResult(BaseModel):
    """Outcome of a retraining run: the decision, both scores and the versions involved."""

    decision: Decision
    reason: str
    registered_model_name: str
    data_fingerprint: str
    champion_version: str
    challenger_version: str | None = None
    champion_score: float | None = None
    challenger_score: float | None = None
    retraining_run_id: str | None = None
    search_run_id: str | None = None


@flow(name="retrain", flow_run_name="retrain-{registered_model_name}")
def retrain_flow(
    registered_model_name: str,
    data_path: str,
    spec_path: str,
    tune: list[str],
    max_trials: int = 2,
    policy: RetrainingPolicy = RetrainingPolicy(),  # noqa: B008 - never mutated
    tracking_uri: str | None = None,
    cause: RetrainingCause | None = None,
) -> RetrainingResult:
    """Retrain `registered_model_name` on the data file at `data_path`.

    `spec_path` is the spec the champion was tuned with; its hypermodel,
    objective, fit and compile settings apply. `tune` names the hyperparameters
    to search again (at most `max_trials` trials); the others stay at the
    champion's values. Data whose fingerprint a version of the model already
    records is skipped, and no version is registered. `cause` is the event
    that started the run, recorded on the retraining run.
    """
    logger = get_run_logger()
    spec = load_spec(spec_path)
    uri = resolve_tracking_uri(tracking_uri, spec.mlflow.tracking_uri)
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)

    champion = read_champion_task(client, registered_model_name)
    data_ref, dataset = load_data_file(
        spec, data_path, policy.holdout_fraction, policy.holdout_seed
    )
    logger.info(
        "Champion is %s version %s (run %s); new data %s has fingerprint %s.",
        registered_model_name, champion.version, champion.run_id, data_path,
        data_ref.fingerprint[:12],
    )
    if cause is not None and cause.num_samples not in (None, data_ref.num_samples):
        logger.warning(
            "The %s event announced %d samples but %s contains %d, so the file "
            "changed after the event. Retraining on its current content.",
            cause.event, cause.num_samples, data_path, data_ref.num_samples,
        )

    handled_by = already_handled(client, champion, data_ref.fingerprint)
    if handled_by is not None:
        return record_skip(client, spec, champion, data_ref, handled_by, cause)

    entries = tailor_hyperparameters(spec, champion, tune)
    with tempfile.TemporaryDirectory(prefix="tuneflow-retrain-") as folder:
        challenger_spec = make_challenger_spec(spec, entries, dataset, Path(folder), max_trials)
        run_id = start_retraining_run(
            client, spec, champion, data_ref, data_path, tune, max_trials, policy, cause
        )
        try:
            result = search_and_decide(
                client, challenger_spec, champion, dataset, data_ref, policy, run_id
            )
        except BaseException as error:
            client.set_tag(run_id, "tuneflow.error", f"{type(error).__name__}: {error}"[:5000])
            client.set_terminated(run_id, status="FAILED")
            raise

    publish_decision(result, spec.objective.name)
    return result


@task(name="read-champion", cache_policy=NONE)
def read_champion_task(client: MlflowClient, registered_model_name: str) -> Champion:
    """Read the champion version and its trial run's hyperparameter values."""
    return read_champion(client, registered_model_name)


def already_handled(client: MlflowClient, champion: Champion, fingerprint: str) -> str | None:
    """Return the version that already covers data with this fingerprint, or None.

    A version covers the data when it was registered from it by a retraining
    run, or when it is the champion and was trained on it.
    """
    if champion.data_fingerprint == fingerprint:
        return champion.version
    return find_version_for_data(client, champion.registered_model_name, fingerprint)


def tailor_hyperparameters(
    spec: TuningSpec, champion: Champion, tune: list[str]
) -> list[HyperparameterSpec]:
    """Return spec entries that tune the names in `tune` and fix the rest at the champion's.

    Each tuned entry keeps the range of the spec's search space and takes the
    champion's value as its default, so oracles that start from the defaults
    start from the champion.

    Raises:
        ValueError: `tune` names a hyperparameter the search space lacks, or a
            champion's param cannot be read as its hyperparameter's value.
    """
    _, space = build_search_space(spec)
    names = [hp.name for hp in space.space]
    unknown = [name for name in tune if name not in names]
    if unknown:
        raise ValueError(
            f"tune: {unknown} are not hyperparameters of {spec.hypermodel!r}. "
            f"Received: tune={tune!r}. Use names from {names}."
        )

    values = typed_values(space, champion.params)
    entries = [
        _tuned_entry(hp, values.get(hp.name)) if hp.name in tune else _fixed_entry(hp, values)
        for hp in space.space
    ]
    # Building the entries applies tuner_core's own checks to the tailored space.
    hyperparameters_from_spec(entries)
    return entries


def _fixed_entry(hp: HyperParameter, values: dict[str, Any]) -> HyperparameterSpec:
    # NOTE: a conditional hyperparameter that was inactive in the champion's
    # trial has no param, so it is fixed at its default.
    value = values.get(hp.name, hp.value if isinstance(hp, Fixed) else hp.default)
    return HyperparameterSpec(name=hp.name, type="Fixed", value=value, **_parent(hp))


def _tuned_entry(hp: HyperParameter, champion_value: Any) -> HyperparameterSpec:
    config = hp.get_config()
    config.pop("conditions")
    config["default"] = champion_value if _is_valid(hp, champion_value) else hp.default
    if isinstance(hp, Fixed):
        config.pop("default")
    return HyperparameterSpec(type=type(hp).__name__, **config, **_parent(hp))


def _is_valid(hp: HyperParameter, value: Any) -> bool:
    if value is None:
        return False
    try:
        hp.validate_value(value)
    except ValueError:
        return False
    return True


def _parent(hp: HyperParameter) -> dict[str, Any]:
    # NOTE: a spec entry takes one parent, so only the innermost condition of a
    # nested conditional scope carries over.
    if not hp.conditions:
        return {}
    condition = hp.conditions[-1]
    return {"parent_name": condition.name, "parent_values": list(condition.values)}


def make_challenger_spec(
    spec: TuningSpec,
    entries: list[HyperparameterSpec],
    dataset: Dataset,
    folder: Path,
    max_trials: int,
) -> TuningSpec:
    """Return the spec of the challenger's search: the tailored space on the new data.

    The search trains on the part of the new data outside the held-out split,
    written to `folder` as an .npz file. It registers nothing; the retraining
    flow registers the challenger after comparing it with the champion.
    """
    path = folder / "tuning_data.npz"
    np.savez(path, x=dataset.x_train, y=dataset.y_train)
    data = spec.model_dump(mode="json", exclude={"base_dir"})
    data["data"] = {
        "source": "npz",
        "path": str(path),
        "validation_split": spec.data.validation_split,
    }
    data["hyperparameters"] = [entry.model_dump(exclude_none=True) for entry in entries]
    data["tune_new_entries"] = False
    data["max_trials"] = max_trials
    # A challenger search starts afresh instead of resuming the spec's project.
    data["project_name"] = None
    data["overwrite"] = False
    data["directory"] = None
    data["mlflow"]["registered_model_name"] = None
    data["mlflow"]["tags"] = {**spec.mlflow.tags, PURPOSE_TAG: CHALLENGER_PURPOSE}
    return parse_spec(data, base_dir=spec.base_dir)


def start_retraining_run(
    client: MlflowClient,
    spec: TuningSpec,
    champion: Champion,
    data_ref: DataRef,
    data_path: str,
    tune: list[str],
    max_trials: int,
    policy: RetrainingPolicy,
    cause: RetrainingCause | None,
) -> str:
    """Create the MLflow run that records one retraining and its decision."""
    experiment_id = ensure_experiment(client, spec.mlflow.experiment, client.tracking_uri)
    run = client.create_run(
        experiment_id,
        run_name=f"retrain-{time.strftime('%Y%m%d-%H%M%S')}",
        tags={
            KIND_TAG: "retraining",
            "tuneflow.registered_model_name": champion.registered_model_name,
            "tuneflow.champion_version": champion.version,
            DATA_FINGERPRINT_TAG: data_ref.fingerprint,
            **cause_tags(cause),
        },
    )
    params = {
        "data_path": data_path,
        "data.num_samples": data_ref.num_samples,
        "tune": json.dumps(tune),
        "max_trials": max_trials,
        "margin": policy.margin,
        "holdout_fraction": policy.holdout_fraction,
        "holdout_seed": policy.holdout_seed,
    }
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()])
    return run.info.run_id


def cause_tags(cause: RetrainingCause | None) -> dict[str, str]:
    """Return the run tags that record what started the retraining."""
    if cause is None:
        return {"tuneflow.cause.event": "manual"}
    tags = {"tuneflow.cause.event": cause.event}
    if cause.num_samples is not None:
        tags["tuneflow.cause.num_samples"] = str(cause.num_samples)
    if cause.score is not None:
        tags["tuneflow.cause.score"] = repr(cause.score)
    return tags


def search_and_decide(
    client: MlflowClient,
    challenger_spec: TuningSpec,
    champion: Champion,
    dataset: Dataset,
    data_ref: DataRef,
    policy: RetrainingPolicy,
    run_id: str,
) -> RetrainingResult:
    """Tune the challenger, score both models on the held-out data, record the decision."""
    logger = get_run_logger()
    spec_text = challenger_spec.model_dump_json(indent=2)
    search = run_search(
        challenger_spec, client.tracking_uri, spec_file=("challenger_spec.json", spec_text)
    )
    best = search.best_trial
    if best is None or best["model_uri"] is None:
        raise RuntimeError(f"The challenger's search {search.parent_run_id} logged no model.")

    objective = search.objective
    champion_score, challenger_score = evaluate_both(
        champion.model_uri, best["model_uri"], dataset, objective
    )
    promoted = is_better(challenger_score, champion_score, search.direction, policy.margin)
    verb = "beats" if promoted else "does not beat"
    reason = (
        f"On {len(dataset.x_val)} held-out samples the challenger's {objective} "
        f"{challenger_score:.4f} {verb} the champion's {champion_score:.4f} by more than "
        f"the margin {policy.margin:g} ({search.direction}imize)."
    )
    decision: Decision = "promoted" if promoted else "rejected"

    challenger_version = register_challenger(champion, best["model_uri"], best["run_id"])
    # The fingerprint is tagged with the decision, not at registration, so a run
    # that fails in between leaves data that a later event retrains on.
    tags = {
        DATA_FINGERPRINT_TAG: data_ref.fingerprint,
        DECISION_TAG: decision,
        REASON_TAG: reason,
        CHAMPION_SCORE_TAG: repr(champion_score),
        CHALLENGER_SCORE_TAG: repr(challenger_score),
        RETRAINING_RUN_TAG: run_id,
    }
    name = champion.registered_model_name
    for key, value in tags.items():
        client.set_model_version_tag(name, challenger_version, key, value)
        client.set_model_version_tag(name, champion.version, f"{key}.last_challenge", value)
    if promoted:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, challenger_version)

    record_decision(client, run_id, tags, champion_score, challenger_score, challenger_version)
    client.set_tag(run_id, "tuneflow.search_run_id", search.parent_run_id)
    client.set_terminated(run_id, status="FINISHED")
    logger.info("Challenger %s version %s %s: %s", name, challenger_version, decision, reason)
    return RetrainingResult(
        decision=decision,
        reason=reason,
        registered_model_name=name,
        data_fingerprint=data_ref.fingerprint,
        champion_version=champion.version,
        challenger_version=challenger_version,
        champion_score=champion_score,
        challenger_score=challenger_score,
        retraining_run_id=run_id,
        search_run_id=search.parent_run_id,
    )


@task(name="evaluate-champion-and-challenger", cache_policy=NONE)
def evaluate_both(
    champion_uri: str, challenger_uri: str, dataset: Dataset, objective: str
) -> tuple[float, float]:
    """Score both models on the same held-out samples; return (champion, challenger)."""
    champion_score = evaluate_model(champion_uri, dataset.x_val, dataset.y_val, objective)
    challenger_score = evaluate_model(challenger_uri, dataset.x_val, dataset.y_val, objective)
    return champion_score, challenger_score


@task(name="register-challenger", cache_policy=NONE)
def register_challenger(champion: Champion, model_uri: str, run_id: str) -> str:
    """Register the challenger's model as a new version, without moving any alias."""
    version = mlflow.register_model(
        model_uri, champion.registered_model_name, tags={"tuneflow.source_run_id": run_id}
    )
    return str(version.version)


def record_decision(
    client: MlflowClient,
    run_id: str,
    tags: dict[str, str],
    champion_score: float,
    challenger_score: float,
    challenger_version: str | None,
) -> None:
    """Log the decision tags and both scores on the retraining run."""
    timestamp = int(time.time() * 1000)
    recorded_at_start = (RETRAINING_RUN_TAG, DATA_FINGERPRINT_TAG)
    run_tags = [RunTag(key, value) for key, value in tags.items() if key not in recorded_at_start]
    if challenger_version is not None:
        run_tags.append(RunTag("tuneflow.challenger_version", challenger_version))
    client.log_batch(
        run_id,
        metrics=[
            Metric("champion_score", champion_score, timestamp, 0),
            Metric("challenger_score", challenger_score, timestamp, 0),
        ],
        tags=run_tags,
    )


def skip_reason(
    fingerprint: str,
    registered_model_name: str,
    handled_by: str,
    cause: RetrainingCause | None,
) -> str:
    """Say why a retraining registered nothing, with advice that fits its cause.

    After a degradation event, the same data would repeat the training that
    produced the degraded version, so the advice is to add newer samples.
    """
    reason = (
        f"Data with fingerprint {fingerprint[:12]} was already handled by "
        f"{registered_model_name} version {handled_by}, so no new version was "
        "registered."
    )
    if cause is not None and cause.event == MODEL_DEGRADED_EVENT:
        return (
            f"{reason} The degradation was measured on data that this version "
            "already covers, and retraining on the same samples would repeat its "
            "training. Add newer samples to the data file, or set the monitoring "
            "threshold to the score you expect, then run the monitoring again."
        )
    return f"{reason} Emit the event again only for data with new content."


def record_skip(
    client: MlflowClient,
    spec: TuningSpec,
    champion: Champion,
    data_ref: DataRef,
    handled_by: str,
    cause: RetrainingCause | None,
) -> RetrainingResult:
    """Record a retraining run that registers nothing, because the data was handled."""
    logger = get_run_logger()
    reason = skip_reason(
        data_ref.fingerprint, champion.registered_model_name, handled_by, cause
    )
    experiment_id = ensure_experiment(client, spec.mlflow.experiment, client.tracking_uri)
    run = client.create_run(
        experiment_id,
        run_name=f"retrain-skipped-{time.strftime('%Y%m%d-%H%M%S')}",
        tags={
            KIND_TAG: "retraining",
            "tuneflow.registered_model_name": champion.registered_model_name,
            "tuneflow.champion_version": champion.version,
            "tuneflow.handled_by_version": handled_by,
            DATA_FINGERPRINT_TAG: data_ref.fingerprint,
            DECISION_TAG: "skipped",
            REASON_TAG: reason,
            **cause_tags(cause),
        },
    )
    client.set_terminated(run.info.run_id, status="FINISHED")
    logger.info("%s", reason)

    result = RetrainingResult(
        decision="skipped",
        reason=reason,
        registered_model_name=champion.registered_model_name,
        data_fingerprint=data_ref.fingerprint,
        champion_version=champion.version,
        retraining_run_id=run.info.run_id,
    )
    publish_decision(result, spec.objective.name)
    return result


def publish_decision(result: RetrainingResult, objective: str) -> None:
    """Publish the decision as a Prefect markdown artifact and a table artifact."""
    key = artifact_key("retraining", result.registered_model_name)
    markdown = "\n".join(
        [
            f"# Retraining of {result.registered_model_name}: {result.decision}",
            "",
            result.reason,
            "",
            "| model | version | held-out " + objective + " |",
            "|---|---|---|",
            f"| champion | {result.champion_version} | {_format_score(result.champion_score)} |",
            f"| challenger | {result.challenger_version or '-'} | "
            f"{_format_score(result.challenger_score)} |",
            "",
            f"Data fingerprint: `{result.data_fingerprint}`. "
            f"MLflow retraining run: `{result.retraining_run_id}`.",
        ]
    )
    create_markdown_artifact(key=key, markdown=markdown, description=result.reason)
    create_table_artifact(
        key=f"{key}-scores",
        table=[
            {"model": "champion", "version": result.champion_version,
             objective: result.champion_score, "decision": result.decision},
            {"model": "challenger", "version": result.challenger_version,
             objective: result.challenger_score, "decision": result.decision},
        ],
        description=f"Held-out {objective} of champion and challenger",
    )


def _format_score(score: float | None) -> str:
    return "-" if score is None else f"{score:.4f}"
