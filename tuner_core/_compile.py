"""Compile overrides: the optimizer, loss and metrics a tuner imposes on each trial."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuner_core._hp_types import Fixed, HyperParameter
from tuner_core._hypermodel import HyperModel
from tuner_core._session import reset_keras_session
from tuner_core._hyperparameters import HyperParameters


@dataclass
class CompileOverrides:
    """Arguments that replace the hypermodel's own `compile` arguments.

    The optimizer may be a name, a Keras optimizer object or its serialized
    config. Every trial compiles with a fresh optimizer built from its config,
    so the object passed here is never trained.
    """

    optimizer: Any = None
    loss: Any = None
    metrics: list[Any] | None = None

    def is_empty(self) -> bool:
        return self.optimizer is None and self.loss is None and self.metrics is None

    def overridden_keys(self) -> list[str]:
        return [key for key in ("optimizer", "loss", "metrics") if getattr(self, key) is not None]

    def optimizer_config(self) -> Any:
        """Return the optimizer as a name or a serialized config, never an object."""
        import keras

        if self.optimizer is None or isinstance(self.optimizer, (str, dict)):
            return self.optimizer
        if isinstance(self.optimizer, keras.optimizers.Optimizer):
            return keras.optimizers.serialize(self.optimizer)
        raise ValueError(
            f"optimizer override must be a name, a config dict or a Keras optimizer, "
            f"but got optimizer={self.optimizer!r}. Pass e.g. 'adam' or "
            "keras.optimizers.Adam(1e-3)."
        )

    def fresh_optimizer(self) -> Any:
        """Return a new optimizer object built from the override's config."""
        import keras

        config = self.optimizer_config()
        if config is None:
            return None
        return keras.optimizers.get(config) if isinstance(config, str) else (
            keras.optimizers.deserialize(config)
        )


def apply_compile_overrides(model: Any, overrides: CompileOverrides | None) -> Any:
    """Recompile `model` with the overrides in place of its own arguments."""
    if overrides is None or overrides.is_empty():
        return model
    import keras

    config = model.get_compile_config() or {}
    if overrides.optimizer is not None:
        config["optimizer"] = keras.optimizers.serialize(overrides.fresh_optimizer())
    elif "optimizer" not in config:
        config["optimizer"] = "rmsprop"
    if overrides.loss is not None:
        config["loss"] = _serialize_loss(overrides.loss)
    if overrides.metrics is not None:
        config["metrics"] = [_serialize_metric(m) for m in overrides.metrics]
    model.compile_from_config(config)
    return model


def _serialize_loss(loss: Any) -> Any:
    import keras

    if isinstance(loss, (str, dict)) or loss is None:
        return loss
    return keras.losses.serialize(loss)


def _serialize_metric(metric: Any) -> Any:
    import keras

    if isinstance(metric, (str, dict)):
        return metric
    return keras.metrics.serialize(metric)


def find_override_conflicts(
    hypermodel: HyperModel, space: HyperParameters, overrides: CompileOverrides | None
) -> dict[str, list[str]]:
    """Return the tuned hyperparameters that feed compile arguments an override replaces.

    Maps each such name to the overridden keys it feeds.

    Each tuned hyperparameter is moved off its default in turn. When that
    changes the hypermodel's own compile argument for an overridden key (say
    the learning rate inside its optimizer), the override discards that effect.
    """
    if overrides is None or overrides.is_empty():
        return {}

    keys = overrides.overridden_keys()
    baseline = _compile_arguments(hypermodel, space, {}, keys)
    conflicts: dict[str, list[str]] = {}
    for hp in space.active_hyperparameters():
        if isinstance(hp, Fixed):
            continue
        alternative = _alternative_value(hp)
        if alternative is None:
            continue
        changed = _compile_arguments(hypermodel, space, {hp.name: alternative}, keys)
        fed = [key for key in keys if changed[key] != baseline[key]]
        if fed:
            conflicts[hp.name] = fed
    reset_keras_session()
    return conflicts


def _compile_arguments(
    hypermodel: HyperModel, space: HyperParameters, values: dict[str, Any], keys: list[str]
) -> dict[str, Any]:
    hp = space.copy()
    hp.set_values(values)
    reset_keras_session()
    model = hypermodel.build(hp)
    config = model.get_compile_config() or {}
    arguments = {key: config.get(key) for key in keys}
    if isinstance(arguments.get("optimizer"), dict):
        optimizer = dict(arguments["optimizer"])
        optimizer["config"] = {
            k: v for k, v in optimizer.get("config", {}).items() if k != "name"
        }
        arguments["optimizer"] = optimizer
    return arguments


def _alternative_value(hp: HyperParameter) -> Any:
    grid = hp.grid_values()
    candidates = grid if grid else [hp.prob_to_value(0.0), hp.prob_to_value(1.0)]
    for candidate in candidates:
        if candidate != hp.default:
            return candidate
    return None
