"""The `Oracle` base class: hands out trials and keeps their records."""

from __future__ import annotations

import json
import logging
import math
import os
import random
from pathlib import Path
from typing import Any

from tuner_core._hyperparameters import HyperParameters
from tuner_core._objective import Objective, resolve_objective
from tuner_core._search_space import count_configurations
from tuner_core._trial import Trial, TrialStatus

logger = logging.getLogger(__name__)


def config_key(values: dict[str, Any]) -> str:
    """Return a key that is equal for equal configurations of active values."""
    return json.dumps(sorted(values.items(), key=lambda item: item[0]), default=str)


class Oracle:
    """Chooses the hyperparameter values of each trial and records the results.

    Subclasses implement `populate_space(trial_number)`, returning
    `{"status": TrialStatus.RUNNING, "values": {...}}` for a new configuration,
    or `{"status": TrialStatus.STOPPED, "message": ...}` when the search is over.
    The oracle never hands out a configuration that already ran or is running.
    """

    def __init__(
        self,
        objective: Any = None,
        max_trials: int | None = None,
        hyperparameters: HyperParameters | None = None,
        allow_new_entries: bool = True,
        tune_new_entries: bool = True,
        seed: int | None = None,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
    ) -> None:
        if max_trials is not None and (not isinstance(max_trials, int) or max_trials < 1):
            raise ValueError(
                f"max_trials must be an integer >= 1, but got max_trials={max_trials!r}. "
                "Pass the number of trials to run, e.g. max_trials=10."
            )
        if max_retries_per_trial < 0:
            raise ValueError(
                f"max_retries_per_trial must be >= 0, but got {max_retries_per_trial!r}."
            )
        if max_consecutive_failed_trials < 1:
            raise ValueError(
                "max_consecutive_failed_trials must be >= 1, but got "
                f"{max_consecutive_failed_trials!r}."
            )
        self.objective: Objective = resolve_objective(objective)
        self.max_trials = max_trials
        self.hyperparameters = (
            hyperparameters.copy() if hyperparameters is not None else HyperParameters()
        )
        self.allow_new_entries = allow_new_entries
        self.tune_new_entries = tune_new_entries
        self.seed = seed if seed is not None else random.randint(1, 2**31 - 1)
        # A seed drawn here may give way to a saved one on resume; a chosen one may not.
        self.seed_given = seed is not None
        self.max_retries_per_trial = max_retries_per_trial
        self.max_consecutive_failed_trials = max_consecutive_failed_trials
        self.space: HyperParameters = self.hyperparameters.copy()
        self.trials: dict[str, Trial] = {}
        self._size_cache: tuple[int, int | None] | None = None

    # The search space.

    def set_space(self, space: HyperParameters) -> None:
        """Use `space`, as built by `build_search_space`, for every later trial."""
        self.space = space.copy()
        self._size_cache = None

    def space_size(self) -> int | None:
        """Return the number of distinct configurations, or None if unbounded."""
        signature = len(self.space.space)
        if self._size_cache is None or self._size_cache[0] != signature:
            self._size_cache = (signature, count_configurations(self.space))
        return self._size_cache[1]

    # Handing out trials.

    def populate_space(self, trial_number: int) -> dict[str, Any]:
        raise NotImplementedError

    def create_trial(self, tuner_id: str = "tuner0") -> Trial:
        """Return the next trial, with status STOPPED when the search is over."""
        number = len(self.trials)
        trial_id = self._trial_id(number)
        if self.max_trials is not None and number >= self.max_trials:
            return self._stopped(trial_id, number, f"reached max_trials={self.max_trials}")

        response = self.populate_space(number)
        if response["status"] == TrialStatus.STOPPED:
            return self._stopped(trial_id, number, response.get("message", "oracle stopped"))

        hp = self.space.copy()
        hp.set_values(response["values"])
        trial = Trial(trial_id=trial_id, number=number, hyperparameters=hp)
        trial.values = dict(response["values"])
        self.trials[trial_id] = trial
        logger.debug("Trial %s created by %s with values %s", trial_id, tuner_id, hp.values)
        return trial

    def _stopped(self, trial_id: str, number: int, message: str) -> Trial:
        return Trial(
            trial_id=trial_id,
            number=number,
            hyperparameters=self.space.copy(),
            status=TrialStatus.STOPPED,
            message=message,
        )

    def _trial_id(self, number: int) -> str:
        width = len(str(max((self.max_trials or 1) - 1, 0)))
        return f"{number:0{max(width, 2)}d}"

    def seen_keys(self) -> set[str]:
        """Return the keys of every configuration handed out, finished or not."""
        return {config_key(t.hyperparameters.values) for t in self.trials.values()}

    # Recording results.

    def update_trial(self, trial_id: str, metrics: dict[str, float], step: int = 0) -> None:
        trial = self.trials[trial_id]
        for name, value in metrics.items():
            trial.metrics.setdefault(name, []).append(float(value))

    def end_trial(
        self,
        trial: Trial | str,
        status: TrialStatus = TrialStatus.COMPLETED,
        *,
        score: float | None = None,
        best_step: int | None = None,
        metrics: dict[str, list[float]] | None = None,
        values: dict[str, Any] | None = None,
        message: str | None = None,
    ) -> Trial:
        """Record how a trial ended."""
        trial_id = trial if isinstance(trial, str) else trial.trial_id
        record = self.trials[trial_id]
        record.status = TrialStatus(status)
        record.score = score
        record.best_step = best_step
        if metrics is not None:
            record.metrics = metrics
        if values is not None:
            record.values = values
        record.message = message
        self.on_trial_end(record)
        return record

    def on_trial_end(self, trial: Trial) -> None:
        """Let a subclass update its model of the objective."""

    def get_best_trials(self, num_trials: int = 1) -> list[Trial]:
        """Return completed trials best first; NaN scores rank after every finite one."""
        completed = [t for t in self.trials.values() if t.status == TrialStatus.COMPLETED]
        completed.sort(key=lambda t: (self.objective.sort_key(t.score), t.number))
        return completed[:num_trials]

    def completed_scores(self) -> list[tuple[Trial, float]]:
        return [
            (t, t.score)
            for t in self.trials.values()
            if t.status == TrialStatus.COMPLETED and t.score is not None and not math.isnan(t.score)
        ]

    # Saving and reloading.

    def get_state(self) -> dict[str, Any]:
        return {
            "oracle": type(self).__name__,
            "objective": {"name": self.objective.name, "direction": self.objective.direction},
            "max_trials": self.max_trials,
            "seed": self.seed,
            "space": self.space.get_config(),
            "trials": [t.get_state() for t in self.trials.values()],
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.seed = state["seed"]
        self.space = HyperParameters.from_config(state["space"])
        self._size_cache = None
        self.trials = {}
        for trial_state in state["trials"]:
            trial = Trial.from_state(trial_state)
            self.trials[trial.trial_id] = trial

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the oracle state to `path` atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.get_state(), indent=1, default=str))
        temporary.replace(path)

    def reload(self, path: str | os.PathLike[str]) -> None:
        self.set_state(json.loads(Path(path).read_text()))
