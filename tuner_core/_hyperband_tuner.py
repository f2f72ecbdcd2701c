"""The `Hyperband` tuner: trains each trial to the epoch budget its bracket sets."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import keras

from tuner_core._hyperparameters import HyperParameters
from tuner_core._training import restore_trial_state
from tuner_core._trial import Trial
from tuner_core._tuner import (
    BUILD_CONFIG_FILE,
    OPTIMIZER_FILE,
    WEIGHTS_FILE,
    Tuner,
    load_arrays,
)
from tuner_core.oracles import HyperbandOracle, HyperbandTrial

logger = logging.getLogger(__name__)

_SCHEDULED_FIT_ARGUMENTS = ("epochs", "initial_epoch")


class ContinueFromTrial(keras.callbacks.Callback):
    """Loads the saved state of an earlier trial when training begins.

    The state is the weights of the trial's best epoch and, when the trial
    saved them, its optimizer's variables at that epoch, so training goes on
    with the same iteration count and moment estimates. KerasTuner reloads the
    weights only, which restarts an optimizer such as Adam from zero moments.
    An optimizer whose variables differ from the saved ones (another optimizer
    class, say) keeps its fresh state.

    Keras builds a model without an `Input` only on its first batch, so the
    callback builds it from the earlier trial's build config first.
    """

    def __init__(self, trial_dir: Path) -> None:
        super().__init__()
        self.trial_dir = trial_dir

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        weights_path = self.trial_dir / WEIGHTS_FILE
        if not weights_path.exists():
            raise FileNotFoundError(
                f"Weights of the continued trial not found: {weights_path}. The "
                "project directory must keep every trial's weights while "
                "Hyperband runs; start afresh with overwrite=True if they are lost."
            )
        build_config = None
        if not self.model.built:
            build_config = json.loads((self.trial_dir / BUILD_CONFIG_FILE).read_text())
        optimizer_path = self.trial_dir / OPTIMIZER_FILE
        restore_trial_state(
            self.model,
            load_arrays(weights_path),
            build_config,
            load_arrays(optimizer_path) if optimizer_path.exists() else None,
            str(optimizer_path),
        )


class Hyperband(Tuner):
    """A tuner that runs KerasTuner's Hyperband schedule.

    Each trial trains up to `tuner/epochs` epochs from `tuner/initial_epoch`,
    as its `HyperbandTrial.schedule` sets, and a trial that continues an
    earlier one starts from that trial's saved best-epoch weights and
    optimizer state (see `ContinueFromTrial`). An
    `epochs=` passed to `search()` is ignored with a warning, because the
    schedule sets every budget up to `max_epochs`.

    Args:
        hypermodel: A build function `build_model(hp)` or a `HyperModel`.
        objective: The metric name or `Objective` to optimize.
        max_epochs: The maximum number of epochs any trial trains to.
            Defaults to 100.
        factor: The reduction factor between rounds. Defaults to 3.
        hyperband_iterations: How many times to run the whole set of
            brackets, or None to repeat until the space is exhausted.
            Defaults to 1.
        seed, hyperparameters, tune_new_entries, allow_new_entries,
        max_retries_per_trial, max_consecutive_failed_trials: As for
            `HyperbandOracle`.
        **kwargs: `Tuner` arguments such as `directory` and `project_name`.
    """

    def __init__(
        self,
        hypermodel: Any = None,
        objective: Any = None,
        max_epochs: int = 100,
        factor: int = 3,
        hyperband_iterations: int | None = 1,
        seed: int | None = None,
        hyperparameters: HyperParameters | None = None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        **kwargs: Any,
    ) -> None:
        oracle = HyperbandOracle(
            objective=objective,
            max_epochs=max_epochs,
            factor=factor,
            hyperband_iterations=hyperband_iterations,
            seed=seed,
            hyperparameters=hyperparameters,
            tune_new_entries=tune_new_entries,
            allow_new_entries=allow_new_entries,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        super().__init__(hypermodel, oracle, seed=seed, **kwargs)

    def on_search_begin(self, fit_kwargs: dict[str, Any]) -> None:
        max_epochs = self.oracle.max_epochs
        for name in _SCHEDULED_FIT_ARGUMENTS:
            if name not in fit_kwargs:
                continue
            value = fit_kwargs.pop(name)
            warnings.warn(
                f"Hyperband ignores search({name}={value!r}): each trial trains for "
                f"the epoch budget of its bracket round, up to max_epochs="
                f"{max_epochs}. Remove {name}= from search(), and set max_epochs= "
                "on the tuner to change the largest budget.",
                UserWarning,
                stacklevel=3,
            )

    def trial_fit_kwargs(
        self, trial: Trial, fit_kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        if not isinstance(trial, HyperbandTrial):
            raise TypeError(
                f"Trial {trial.trial_id} has no Hyperband schedule. The Hyperband "
                "tuner needs a HyperbandOracle; use Tuner with other oracles."
            )
        schedule = trial.schedule
        fit_kwargs["epochs"] = schedule["tuner/epochs"]
        fit_kwargs["initial_epoch"] = schedule["tuner/initial_epoch"]
        parent_id = schedule.get("tuner/trial_id")
        if parent_id is not None:
            callback = ContinueFromTrial(self.project_dir / f"trial_{parent_id}")
            fit_kwargs["callbacks"] = [callback, *fit_kwargs.get("callbacks", [])]
        logger.info(
            "Trial %s trains from epoch %d to %d (bracket %d, round %d)%s",
            trial.trial_id,
            schedule["tuner/initial_epoch"],
            schedule["tuner/epochs"],
            schedule["tuner/bracket"],
            schedule["tuner/round"],
            "" if parent_id is None else f", continuing trial {parent_id}",
        )
        return fit_kwargs
