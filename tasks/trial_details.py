"""MLflow records of how a trial trained: executions, optimizer, NaN objective.

The params of a trial run are its hyperparameter values and nothing else, so
these details go into tags and metrics.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from mlflow.entities import Metric, RunTag

from tasks.executions import ExecutionsOutcome
from tasks.tracking import RunRecords

EXECUTION_SCORE_METRIC = "execution_score"
OBJECTIVE_NAN_TAG = "tuneflow.objective_nan"
OPTIMIZER_TAG = "tuneflow.optimizer"
LEARNING_RATE_TAG = "tuneflow.learning_rate"


def execution_records(executions: ExecutionsOutcome) -> RunRecords:
    """Return each execution's score, the optimizer used, and a NaN objective.

    `execution_score` has one value per execution, with step = execution
    index. With several executions, the per-epoch metrics are their means,
    with step = epoch; see `mean_epoch_metrics`.
    """
    timestamp = int(time.time() * 1000)
    records = RunRecords(
        metrics=[
            Metric(EXECUTION_SCORE_METRIC, float(score), timestamp, index)
            for index, score in enumerate(executions.scores)
        ],
        tags=[
            RunTag(key, value)
            for key, value in optimizer_tags(executions.best.optimizer).items()
        ],
    )
    if len(executions.outcomes) > 1:
        records.metrics.extend(mean_epoch_metrics(executions, timestamp))
        records.tags.append(RunTag("tuneflow.best_execution", str(executions.best_index)))
    if executions.is_nan():
        records.tags.append(RunTag(OBJECTIVE_NAN_TAG, "true"))
    return records


def mean_epoch_metrics(executions: ExecutionsOutcome, timestamp: int) -> list[Metric]:
    """Return the per-epoch metrics averaged over executions, with step = epoch."""
    return [
        Metric(name, value, timestamp, executions.initial_epoch + index)
        for name, history in executions.mean_history().items()
        for index, value in enumerate(history)
    ]


def describe_optimizer(config: Any) -> dict[str, Any]:
    """Return the class name and learning rate of a serialized Keras optimizer.

    A learning rate schedule is described by its class name.
    """
    if not isinstance(config, dict):
        return {}
    description: dict[str, Any] = {"class_name": config.get("class_name")}
    learning_rate = config.get("config", {}).get("learning_rate")
    if isinstance(learning_rate, dict):
        learning_rate = learning_rate.get("class_name")
    elif isinstance(learning_rate, float):
        # Keras stores the rate as float32: 0.005 reads back as 0.004999999888.
        learning_rate = float(str(np.float32(learning_rate)))
    if learning_rate is not None:
        description["learning_rate"] = learning_rate
    return description


def optimizer_tags(config: Any) -> dict[str, str]:
    """Return the tags naming the optimizer a trial's model trained with."""
    description = describe_optimizer(config)
    tags = {}
    if description.get("class_name") is not None:
        tags[OPTIMIZER_TAG] = str(description["class_name"])
    if "learning_rate" in description:
        tags[LEARNING_RATE_TAG] = str(description["learning_rate"])
    return tags
