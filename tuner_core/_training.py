"""Running one trial: build, apply compile overrides, fit, keep the best epoch."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import keras

from tuner_core._compile import CompileOverrides, apply_compile_overrides
from tuner_core._deadline import TrialDeadline
from tuner_core._errors import ObjectiveNotFoundError
from tuner_core._hp_types import HyperParameter
from tuner_core._hypermodel import HyperModel
from tuner_core._hyperparameters import HyperParameters
from tuner_core._objective import Objective
from tuner_core._session import keras_settings_restored, reset_keras_session

logger = logging.getLogger(__name__)


@dataclass
class TrialOutcome:
    """The result of one trial.

    `model` carries the weights of the best epoch, so evaluating it on the
    validation data reproduces `score`. `new_entries` are the hyperparameters
    declared during the trial that the given search space lacks, such as a
    `batch_size` declared in `HyperModel.fit`.
    """

    model: Any
    history: dict[str, list[float]]
    score: float
    best_epoch: int
    hyperparameters: dict[str, Any]
    optimizer: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    new_entries: list[HyperParameter] = field(default_factory=list)


class BestEpochTracker(keras.callbacks.Callback):
    """A Keras callback that records histories and keeps the best epoch's state.

    The state is the model's weights and its optimizer's variables (see
    `optimizer_state`), so that a trial continued from the best epoch resumes
    training where it left off.

    After the first epoch it raises `ObjectiveNotFoundError` when the objective
    is not among the reported metrics, listing the names that are.
    """

    def __init__(self, objective: Objective) -> None:
        super().__init__()
        self.objective = objective
        self.history: dict[str, list[float]] = {}
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.best_weights: list[Any] | None = None
        self.best_optimizer_state: list[Any] | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        if self.objective.name not in logs:
            raise ObjectiveNotFoundError(
                f"Objective {self.objective.name!r} is not a metric this model "
                f"reports. Metrics reported: {sorted(logs)}. Set the objective to "
                "one of them, or add the metric to compile(metrics=...) and pass "
                "validation data for 'val_' metrics."
            )
        for name, value in logs.items():
            self.history.setdefault(name, []).append(float(value))
        value = float(logs[self.objective.name])
        if self.best_epoch is None or self.objective.is_better(value, self.best_value):
            self.best_value = value
            self.best_epoch = epoch
            self.best_weights = self.model.get_weights()
            self.best_optimizer_state = optimizer_state(self.model)


def build_trial_model(
    hypermodel: HyperModel,
    space: HyperParameters,
    values: dict[str, Any],
    overrides: CompileOverrides | None = None,
    seed: int | None = None,
) -> tuple[Any, HyperParameters]:
    """Build and compile the model of one configuration in a fresh Keras session.

    With a `seed`, the random state is seeded after the reset and before the
    build, so the initial weights repeat from run to run.
    """
    hp = space.copy()
    hp.set_values(values)
    reset_keras_session()
    if seed is not None:
        keras.utils.set_random_seed(seed)
    model = hypermodel.build(hp)
    if model is None:
        raise ValueError(
            f"The hypermodel {hypermodel.name or hypermodel!r} returned None from "
            "build(hp). Return the compiled Keras model."
        )
    model = apply_compile_overrides(model, overrides)
    return model, hp


@keras_settings_restored()
def run_trial(
    hypermodel: HyperModel,
    space: HyperParameters,
    values: dict[str, Any],
    *,
    objective: Objective,
    x: Any = None,
    y: Any = None,
    validation_data: Any = None,
    overrides: CompileOverrides | None = None,
    fit_kwargs: dict[str, Any] | None = None,
    callbacks: list[Any] | None = None,
    seed: int | None = None,
    allow_new_entries: bool = True,
    deadline: TrialDeadline | None = None,
) -> TrialOutcome:
    """Build, compile, fit and score one configuration.

    The score is the objective's best value over the epochs, and the returned
    model contains that epoch's weights. With `allow_new_entries=False`, a
    hyperparameter first declared in `HyperModel.fit` raises ValueError.
    A `deadline` joins the fit callbacks and raises `TrialTimeoutError` once
    it passes. Settings of `keras.config` that the build or fit change are
    restored on return, so they do not reach the next trial in this process.
    """
    if deadline is not None:
        deadline.check("before the model was built")
    model, hp = build_trial_model(hypermodel, space, values, overrides, seed=seed)
    hp._reject_new_names = not allow_new_entries
    fit_kwargs = dict(fit_kwargs or {})
    tracker = BestEpochTracker(objective)
    limit = [] if deadline is None else [deadline]
    fit_kwargs["callbacks"] = [
        tracker,
        *limit,
        *(callbacks or []),
        *fit_kwargs.get("callbacks", []),
    ]
    fit_kwargs.setdefault("verbose", 0)
    if validation_data is not None:
        fit_kwargs["validation_data"] = validation_data

    build_optimizer_state(model)
    args = [a for a in (x, y) if a is not None]
    result = hypermodel.fit(hp, model, *args, **fit_kwargs)
    score, best_epoch = _score_from_fit(result, tracker, objective)
    if tracker.best_weights is not None and best_epoch == tracker.best_epoch:
        model.set_weights(tracker.best_weights)
        if tracker.best_optimizer_state is not None:
            restore_optimizer_state(model, tracker.best_optimizer_state)

    optimizer = None
    if getattr(model, "optimizer", None) is not None:
        optimizer = keras.optimizers.serialize(model.optimizer)
    return TrialOutcome(
        model=model,
        history=tracker.history,
        score=score,
        best_epoch=best_epoch,
        hyperparameters=hp.values,
        optimizer=optimizer,
        new_entries=_entries_missing_from(space, hp),
    )


def build_optimizer_state(model: Any) -> None:
    """Create the optimizer's variables of a built, compiled model before `fit`.

    On the TensorFlow backend, Keras otherwise creates them while it traces
    the first training step, where each variable costs a lifted initializer in
    the graph. Created before, they made a 3-epoch fit of the digits example
    about 60 ms faster (median of 16 fits, 2 CPU cores). A model that is not
    built yet, such as a subclassed model before its first call, is left for
    Keras to build, because its variables do not exist yet.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or optimizer.built or not model.built:
        return
    optimizer.build(model.trainable_variables)


def optimizer_state(model: Any) -> list[Any] | None:
    """Return copies of the values of the model's optimizer variables, or None.

    The variables include the iteration count, the learning rate and the
    per-weight slots such as Adam's moments. None means the model has no
    built optimizer.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not optimizer.built:
        return None
    return [variable.numpy() for variable in optimizer.variables]


def restore_optimizer_state(model: Any, values: list[Any]) -> bool:
    """Assign `values` from `optimizer_state` to the model's optimizer variables.

    Builds the optimizer first when needed. Returns False, and changes
    nothing, when the values do not match the variables in number and shape,
    as after a change of optimizer or of model.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return False
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    variables = optimizer.variables
    if len(variables) != len(values) or any(
        tuple(variable.shape) != tuple(value.shape)
        for variable, value in zip(variables, values)
    ):
        return False
    for variable, value in zip(variables, values):
        variable.assign(value)
    return True


def restore_trial_state(
    model: Any,
    weights: list[Any],
    build_config: dict[str, Any] | None,
    optimizer_values: list[Any] | None,
    source: str,
) -> None:
    """Set an earlier trial's weights and optimizer state on a model about to train.

    A model without an `Input` is built from `build_config` first, because
    Keras builds it only on its first batch. An optimizer whose variables do
    not match `optimizer_values` keeps its fresh state, and a log line names
    `source`, where the state came from.
    """
    if not model.built and build_config:
        model.build_from_config(build_config)
    model.set_weights(weights)
    if optimizer_values is None:
        return
    if not restore_optimizer_state(model, optimizer_values):
        logger.info(
            "The optimizer's variables differ from those saved in %s, so the "
            "optimizer starts afresh.",
            source,
        )


def _entries_missing_from(
    space: HyperParameters, hp: HyperParameters
) -> list[HyperParameter]:
    """Return the entries of `hp` that `space` has under no same name and conditions."""
    missing = []
    for entry in hp.space:
        known = space._by_name(entry.name)
        if not any(k.conditions == entry.conditions for k in known):
            missing.append(entry)
    return missing


def _score_from_fit(result: Any, tracker: Any, objective: Objective) -> tuple[float, int]:
    """Return the score and best epoch from what `HyperModel.fit` returned."""
    if isinstance(result, (int, float)):
        return float(result), max(len(next(iter(tracker.history.values()), [1])) - 1, 0)
    if isinstance(result, dict):
        if objective.name not in result:
            raise ObjectiveNotFoundError(
                f"Objective {objective.name!r} is not among the metrics returned by "
                f"HyperModel.fit: {sorted(result)}. Return it, or change the objective."
            )
        last = max(len(next(iter(tracker.history.values()), [1])) - 1, 0)
        return float(result[objective.name]), last
    if tracker.best_epoch is None:
        raise ValueError(
            "The trial trained no epoch, so it has no score. Pass epochs >= 1 to "
            "search(), and make HyperModel.fit call model.fit with the callbacks "
            "it receives."
        )
    value = tracker.best_value
    return (math.nan if value is None else value), tracker.best_epoch
