"""Grid search: every configuration of the search space once, in a fixed order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tuner_core._hp_types import HyperParameter
from tuner_core._hyperparameters import HyperParameters
from tuner_core._trial import TrialStatus
from tuner_core.oracles._base import Oracle, config_key

NUM_UNSTEPPED_VALUES = 10


def grid_values_of(entry: HyperParameter) -> list[Any]:
    """Return the values grid search tries for `entry`, its default first.

    An entry with a finite grid (a step, a Choice, a Boolean, a Fixed) uses that
    grid, led by the grid value nearest its default. A Float without a step, or
    an Int whose range is too large to list, is tried at its default and at the
    midpoints of 10 equal-probability bins of its sampling, as KerasTuner 1.4.8
    does.
    """
    grid = entry.grid_values()
    if grid is None:
        grid = sorted(
            {
                entry.prob_to_value((i + 0.5) / NUM_UNSTEPPED_VALUES)
                for i in range(NUM_UNSTEPPED_VALUES)
            }
        )
        first = entry.default
    elif entry.default in grid:
        first = entry.default
    else:
        first = min(grid, key=lambda value: abs(value - entry.default))
    return [first, *(value for value in grid if value != first)]


def iterate_grid(space: HyperParameters) -> Iterator[dict[str, Any]]:
    """Yield every configuration of the active entries of `space`, in grid order.

    The first configuration uses every default. Later entries vary fastest, so
    the values under a conditional scope change before the value of its parent.
    """
    entries = space.space
    value_lists = [grid_values_of(entry) for entry in entries]
    probe = space.copy()

    def extend(index: int, partial: dict[str, Any]) -> Iterator[dict[str, Any]]:
        if index == len(entries):
            yield dict(partial)
            return
        entry = entries[index]
        probe._values = partial
        if entry.name in partial or not probe.is_active(entry):
            yield from extend(index + 1, partial)
            return
        for value in value_lists[index]:
            partial[entry.name] = value
            yield from extend(index + 1, partial)
            del partial[entry.name]

    yield from extend(0, {})


class GridSearchOracle(Oracle):
    """Tries every configuration of the search space once, in a fixed order.

    The order is that of `iterate_grid`: the first trial uses every default,
    and the last declared hyperparameter varies fastest. Configurations that
    already ran or are running are skipped, so a reloaded search continues with
    the next configuration it has not tried. Without `max_trials` the search
    runs until the grid is exhausted.

    Args:
        objective: The metric name or `Objective` to optimize.
        max_trials: The maximum number of trials, or None to run the whole
            grid. Defaults to None.
        seed: Stored with the search; grid search itself draws nothing at random.
        hyperparameters: Entries that override the hypermodel's own.
        allow_new_entries, tune_new_entries: As for every oracle.
        max_retries_per_trial: Retries of a failing trial. Defaults to 0.
        max_consecutive_failed_trials: Failed trials in a row that stop the
            search. Defaults to 3.
    """

    def __init__(
        self,
        objective: Any = None,
        max_trials: int | None = None,
        seed: int | None = None,
        hyperparameters: HyperParameters | None = None,
        allow_new_entries: bool = True,
        tune_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
    ) -> None:
        super().__init__(
            objective=objective,
            max_trials=max_trials,
            hyperparameters=hyperparameters,
            allow_new_entries=allow_new_entries,
            tune_new_entries=tune_new_entries,
            seed=seed,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        self._restart_grid()

    def _restart_grid(self) -> None:
        # The cursor walks the grid once instead of rescanning it for each
        # trial. It restarts when trials may have been removed, because their
        # configurations must be tried again, and when entries join the space.
        self._grid: Iterator[dict[str, Any]] | None = None
        self._num_enumerated = 0
        self._expected_num_trials = 0
        self._num_entries = 0

    def populate_space(self, trial_number: int) -> dict[str, Any]:
        if (
            self._grid is None
            or len(self.trials) < self._expected_num_trials
            or len(self.space.space) != self._num_entries
        ):
            self._grid = iterate_grid(self.space)
            self._num_enumerated = 0
            self._num_entries = len(self.space.space)
        self._expected_num_trials = len(self.trials)

        seen = self.seen_keys()
        for values in self._grid:
            self._num_enumerated += 1
            if config_key(values) not in seen:
                self._expected_num_trials += 1
                return {"status": TrialStatus.RUNNING, "values": values}
        return {
            "status": TrialStatus.STOPPED,
            "message": (
                f"search space exhausted after {self._num_enumerated} unique "
                "configurations"
            ),
        }

    def set_space(self, space: HyperParameters) -> None:
        super().set_space(space)
        self._restart_grid()

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        self._restart_grid()
