"""Hyperband: successive halving over brackets of epoch budgets."""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from tuner_core._hyperparameters import HyperParameters
from tuner_core._trial import Trial, TrialStatus
from tuner_core.oracles._base import Oracle
from tuner_core.oracles._bayesian import (
    BayesianOptimizationOracle,
    SpaceEncoding,
    normal_scores,
)
from tuner_core.oracles._sampling import draw_spread_configuration

logger = logging.getLogger(__name__)

# The share of new configurations drawn at random once a model guides the
# others, as in BOHB (Falkner et al., 2018). The random ones keep the search
# from settling on a region that short training makes look good.
RANDOM_FRACTION = 1 / 3
# The confidence-bound weight of the model that proposes the other new
# configurations. BayesianOptimizationOracle's default of 2.6 sends most
# proposals to the edges of the space while few trials have finished. Here
# the random share does the exploring, so the weight is lower.
MODEL_BETA = 1.0


@dataclass(frozen=True)
class BracketSchedule:
    """KerasTuner's bracket schedule for `max_epochs` and `factor`.

    Brackets are numbered from `num_brackets - 1` down to 0, and bracket `b`
    has `b + 1` rounds. Round `r` of bracket `b` runs `num_trials(b, r)`
    trials, each trained to `epochs(b, r)` epochs in all, so every bracket's
    last round trains to `max_epochs` and no round trains beyond it. Bracket 0
    is plain random search at `max_epochs`. The sizes match KerasTuner 1.4.8
    (compared for max_epochs 1 to 299 and factor 2 to 6) and are computed with
    integers, free of rounding error.
    """

    max_epochs: int
    factor: int

    def _floor_log(self) -> tuple[int, bool]:
        """Return floor(log_factor(max_epochs)) and whether the log is whole."""
        exponent, power = 0, 1
        while power * self.factor <= self.max_epochs:
            power *= self.factor
            exponent += 1
        return exponent, power == self.max_epochs

    @property
    def num_brackets(self) -> int:
        return self._floor_log()[0] + 1

    def num_trials(self, bracket: int, round_number: int) -> int:
        exponent, whole = self._floor_log()
        # ceil(1 + log_factor(max_epochs)): the size of bracket 0.
        random_search_size = exponent + 1 if whole else exponent + 2
        scaled = random_search_size * self.factor ** (bracket - round_number)
        return -(-scaled // (bracket + 1))

    def epochs(self, bracket: int, round_number: int) -> int:
        return -(-self.max_epochs // self.factor ** (bracket - round_number))


@dataclass
class HyperbandTrial(Trial):
    """A trial with its place in the Hyperband schedule.

    `schedule` contains KerasTuner's `tuner/` entries: `tuner/epochs` (the epoch
    to train up to), `tuner/initial_epoch`, `tuner/bracket`, `tuner/round`
    and, for a trial that continues an earlier one, `tuner/trial_id`. They are
    kept apart from the hyperparameter values, so they neither show as tuned
    values nor count when detecting duplicate configurations.
    """

    schedule: dict[str, Any] = field(default_factory=dict)

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["schedule"] = dict(self.schedule)
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> HyperbandTrial:
        trial = super().from_state(state)
        assert isinstance(trial, HyperbandTrial)
        trial.schedule = dict(state.get("schedule", {}))
        return trial


class HyperbandOracle(Oracle):
    """Runs Hyperband: brackets of successive halving over epoch budgets.

    Each bracket starts new configurations (never one that ran before) on a
    small budget. The first ones take the points of a scrambled Sobol
    sequence. Once enough trials of one budget have finished, a Gaussian
    process fitted to their scores proposes two thirds of the new
    configurations and the rest stay random, as in BOHB (Falkner et al.,
    2018). Each later round of a bracket continues the best trials of the
    round before, from their saved weights, on a budget `factor` times larger,
    up to `max_epochs`. A trial is continued only once enough of its round
    has finished to prove it is among the best. Failed trials and NaN scores
    rank last and are never continued. The schedule of each trial is stored
    in `HyperbandTrial.schedule`.

    Args:
        objective: The metric name or `Objective` to optimize.
        max_epochs: The maximum number of epochs any trial trains to.
            Defaults to 100.
        factor: The reduction factor between rounds, an integer >= 2.
            Defaults to 3.
        hyperband_iterations: How many times to run the whole set of
            brackets, or None to repeat until the search space is exhausted.
            Defaults to 1.
        seed: The random seed. Draws depend on `(seed, trial number)`.
        hyperparameters: Entries that override the hypermodel's own.
        allow_new_entries, tune_new_entries: As for every oracle.
        max_retries_per_trial: Retries of a failing trial. Defaults to 0.
        max_consecutive_failed_trials: Failed trials in a row that stop the
            search. Defaults to 3.
    """

    def __init__(
        self,
        objective: Any = None,
        max_epochs: int = 100,
        factor: int = 3,
        hyperband_iterations: int | None = 1,
        seed: int | None = None,
        hyperparameters: HyperParameters | None = None,
        allow_new_entries: bool = True,
        tune_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
    ) -> None:
        _check_settings(max_epochs, factor, hyperband_iterations)
        super().__init__(
            objective=objective,
            hyperparameters=hyperparameters,
            allow_new_entries=allow_new_entries,
            tune_new_entries=tune_new_entries,
            seed=seed,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        self.max_epochs = max_epochs
        self.factor = factor
        self.hyperband_iterations = hyperband_iterations
        self.bracket_schedule = BracketSchedule(max_epochs, factor)
        # Brackets still in progress, oldest first. Each round lists its
        # trials as {"trial_id", "parent_id"}. "exhausted" marks a bracket
        # whose first round found no new configuration to fill it.
        self._brackets: list[dict[str, Any]] = []
        self._num_brackets_started = 0
        self._space_exhausted = False

    # Handing out trials.

    def create_trial(self, tuner_id: str = "tuner0") -> Trial:
        trial = super().create_trial(tuner_id)
        if trial.status != TrialStatus.RUNNING:
            return trial
        record = HyperbandTrial(
            **{f.name: getattr(trial, f.name) for f in fields(Trial)},
            schedule=self._schedule_of(trial.trial_id),
        )
        self.trials[trial.trial_id] = record
        return record

    def populate_space(self, trial_number: int) -> dict[str, Any]:
        trial_id = self._trial_id(trial_number)
        self._forget_removed_trials()
        while True:
            for bracket in self._brackets:
                response = self._next_in_bracket(bracket, trial_id, trial_number)
                if response is not None:
                    return response
            self._brackets = [b for b in self._brackets if not self._bracket_is_done(b)]
            if not self._can_start_bracket():
                return self._stop_response()
            self._start_bracket()

    def _next_in_bracket(
        self, bracket: dict[str, Any], trial_id: str, trial_number: int
    ) -> dict[str, Any] | None:
        rounds = bracket["rounds"]
        if not self._round_is_full(bracket, 0):
            rng = np.random.default_rng([self.seed, trial_number])
            values = self._model_guided_configuration(rng, trial_number)
            if values is None:
                values = draw_spread_configuration(
                    self.space,
                    self.seed,
                    self._num_new_configurations(),
                    rng,
                    self.seen_keys(),
                    self.space_size(),
                )
            if values is not None:
                rounds[0].append({"trial_id": trial_id, "parent_id": None})
                return {"status": TrialStatus.RUNNING, "values": values}
            bracket["exhausted"] = True
            self._space_exhausted = True

        for round_number in range(1, len(rounds)):
            parent = self._trial_to_continue(bracket, round_number)
            if parent is not None:
                rounds[round_number].append(
                    {"trial_id": trial_id, "parent_id": parent.trial_id}
                )
                return {
                    "status": TrialStatus.RUNNING,
                    "values": dict(parent.hyperparameters.values),
                }
        return None

    def _model_guided_configuration(
        self, rng: np.random.Generator, trial_number: int
    ) -> dict[str, Any] | None:
        """Return a configuration that a Gaussian process proposes, or None.

        The model is fitted to the scores of the largest epoch budget that has
        at least two more finished trials than the space has dimensions. It
        then proposes the unseen configuration with the best confidence bound,
        as `BayesianOptimizationOracle` does. Returns None, and the caller
        draws at random, for a share `RANDOM_FRACTION` of the configurations,
        before enough trials have finished, and when the fit fails.
        """
        encoding = SpaceEncoding(self.space)
        if encoding.num_dimensions == 0 or rng.random() < RANDOM_FRACTION:
            return None
        observations = self._observations_at_largest_budget(encoding)
        if observations is None:
            return None

        points, scores = observations
        model = BayesianOptimizationOracle(
            objective=self.objective, beta=MODEL_BETA, seed=self.seed
        )
        model.space = self.space
        model.trials = self.trials
        try:
            return model.propose(
                encoding,
                points,
                normal_scores(scores),
                self.seen_keys(),
                self.space_size(),
                rng,
            )
        except (np.linalg.LinAlgError, ValueError) as error:
            logger.warning(
                "Trial %d: fitting the Gaussian process failed (%s), so the trial "
                "gets a random configuration instead",
                trial_number,
                error,
            )
            return None

    def _observations_at_largest_budget(
        self, encoding: SpaceEncoding
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Return the points and scores to minimize of one epoch budget, or None."""
        by_epochs: dict[int, list[tuple[np.ndarray, float]]] = {}
        for trial in self.trials.values():
            epochs = getattr(trial, "schedule", {}).get("tuner/epochs")
            if (
                epochs is None
                or trial.status != TrialStatus.COMPLETED
                or not _is_finite(trial.score)
            ):
                continue
            score = trial.score if self.objective.direction == "min" else -trial.score
            point = encoding.encode(trial.hyperparameters.values)
            by_epochs.setdefault(epochs, []).append((point, score))

        min_observations = encoding.num_dimensions + 2
        for epochs in sorted(by_epochs, reverse=True):
            observations = by_epochs[epochs]
            if len(observations) >= min_observations:
                points = np.array([point for point, _ in observations])
                scores = np.array([score for _, score in observations])
                return points, scores
        return None

    def _num_new_configurations(self) -> int:
        """Return how many trials started a configuration rather than continuing one."""
        return sum(
            1
            for trial in self.trials.values()
            if "tuner/trial_id" not in getattr(trial, "schedule", {})
        )

    def _trial_to_continue(
        self, bracket: dict[str, Any], round_number: int
    ) -> Trial | None:
        """Return the trial of the previous round to continue next, if one is known."""
        number = bracket["bracket"]
        target = self.bracket_schedule.num_trials(number, round_number)
        if len(bracket["rounds"][round_number]) >= target:
            return None

        previous = bracket["rounds"][round_number - 1]
        if self._round_is_full(bracket, round_number - 1):
            previous_size = len(previous)
        else:
            previous_size = self.bracket_schedule.num_trials(number, round_number - 1)
        continued = {entry["parent_id"] for entry in bracket["rounds"][round_number]}
        finished = [
            self.trials[entry["trial_id"]]
            for entry in previous
            if entry["trial_id"] not in continued
            and self.trials[entry["trial_id"]].status.is_finished()
        ]
        if not finished:
            return None
        # The best finished trial is surely among the `target` best of its
        # round once at least `previous_size - target + 1` trials are known to
        # be no better than it.
        if len(finished) < previous_size - target + 1:
            return None
        best = min(finished, key=lambda t: (self.objective.sort_key(t.score), t.number))
        if best.status != TrialStatus.COMPLETED or not _is_finite(best.score):
            return None
        return best

    def _round_is_full(self, bracket: dict[str, Any], round_number: int) -> bool:
        """Return whether a round will get no more trials."""
        entries = bracket["rounds"][round_number]
        if len(entries) >= self.bracket_schedule.num_trials(
            bracket["bracket"], round_number
        ):
            return True
        if round_number == 0:
            return bool(bracket["exhausted"])
        if not self._round_is_full(bracket, round_number - 1):
            return False
        previous = bracket["rounds"][round_number - 1]
        if not all(self.trials[e["trial_id"]].status.is_finished() for e in previous):
            return False
        return self._trial_to_continue(bracket, round_number) is None

    def _bracket_is_done(self, bracket: dict[str, Any]) -> bool:
        last_round = len(bracket["rounds"]) - 1
        if not self._round_is_full(bracket, last_round):
            return False
        return all(
            self.trials[entry["trial_id"]].status.is_finished()
            for entries in bracket["rounds"]
            for entry in entries
        )

    def _can_start_bracket(self) -> bool:
        if self._space_exhausted:
            return False
        if self.hyperband_iterations is None:
            return True
        return (
            self._num_brackets_started
            < self.hyperband_iterations * self.bracket_schedule.num_brackets
        )

    def _start_bracket(self) -> None:
        iteration, position = divmod(
            self._num_brackets_started, self.bracket_schedule.num_brackets
        )
        number = self.bracket_schedule.num_brackets - 1 - position
        self._brackets.append(
            {
                "bracket": number,
                "iteration": iteration,
                "rounds": [[] for _ in range(number + 1)],
                "exhausted": False,
            }
        )
        self._num_brackets_started += 1
        logger.info(
            "Hyperband iteration %d starts bracket %d: %s trials trained to %s epochs",
            iteration,
            number,
            [self.bracket_schedule.num_trials(number, r) for r in range(number + 1)],
            [self.bracket_schedule.epochs(number, r) for r in range(number + 1)],
        )

    def _stop_response(self) -> dict[str, Any]:
        if self._brackets:
            # NOTE: TrialStatus has no IDLE state, so a worker that requests a
            # trial while the rest of the schedule waits on running trials gets
            # STOPPED. Sequential tuners never reach this branch.
            message = "no trial can start until the running trials finish"
        elif self._space_exhausted:
            message = (
                f"search space exhausted after {len(self.seen_keys())} unique "
                "configurations"
            )
        else:
            message = f"finished all {self._num_brackets_started} Hyperband brackets"
        return {"status": TrialStatus.STOPPED, "message": message}

    def _forget_removed_trials(self) -> None:
        """Drop schedule entries of trials no longer in `trials`, so their slots refill.

        A tuner that resumes a search may delete a trial that was running when
        the process stopped. That trial's place in its round is handed out again.
        """
        for bracket in self._brackets:
            for round_number, entries in enumerate(bracket["rounds"]):
                remaining = [e for e in entries if e["trial_id"] in self.trials]
                if len(remaining) < len(entries) and round_number == 0:
                    bracket["exhausted"] = False
                    self._space_exhausted = False
                entries[:] = remaining

    def _schedule_of(self, trial_id: str) -> dict[str, Any]:
        for bracket in self._brackets:
            for round_number, entries in enumerate(bracket["rounds"]):
                for entry in entries:
                    if entry["trial_id"] == trial_id:
                        return self._schedule_entry(
                            bracket["bracket"], round_number, entry
                        )
        raise KeyError(f"Trial {trial_id!r} is not in any Hyperband bracket.")

    def _schedule_entry(
        self, bracket: int, round_number: int, entry: dict[str, Any]
    ) -> dict[str, Any]:
        initial_epoch = 0
        if round_number > 0:
            initial_epoch = self.bracket_schedule.epochs(bracket, round_number - 1)
        schedule = {
            "tuner/epochs": self.bracket_schedule.epochs(bracket, round_number),
            "tuner/initial_epoch": initial_epoch,
            "tuner/bracket": bracket,
            "tuner/round": round_number,
        }
        if entry["parent_id"] is not None:
            schedule["tuner/trial_id"] = entry["parent_id"]
        return schedule

    # Saving and reloading.

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state.update(
            max_epochs=self.max_epochs,
            factor=self.factor,
            hyperband_iterations=self.hyperband_iterations,
            brackets=copy.deepcopy(self._brackets),
            num_brackets_started=self._num_brackets_started,
            space_exhausted=self._space_exhausted,
        )
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """Reload a saved search, keeping this oracle's `hyperband_iterations`."""
        saved = (state["max_epochs"], state["factor"])
        if saved != (self.max_epochs, self.factor):
            raise ValueError(
                f"The saved Hyperband search used max_epochs={saved[0]} and "
                f"factor={saved[1]}, but this oracle has max_epochs={self.max_epochs} "
                f"and factor={self.factor}. Pass the saved values, or start afresh "
                "with overwrite=True or a new project_name."
            )
        super().set_state(state)
        for trial_state in state["trials"]:
            if "schedule" in trial_state:
                trial = HyperbandTrial.from_state(trial_state)
                self.trials[trial.trial_id] = trial
        self._brackets = copy.deepcopy(state["brackets"])
        self._num_brackets_started = state["num_brackets_started"]
        self._space_exhausted = state["space_exhausted"]


def _is_finite(score: float | None) -> bool:
    return score is not None and math.isfinite(score)


def _check_settings(max_epochs: Any, factor: Any, hyperband_iterations: Any) -> None:
    if (
        isinstance(max_epochs, bool)
        or not isinstance(max_epochs, int)
        or max_epochs < 1
    ):
        raise ValueError(
            f"max_epochs must be an integer >= 1, but got max_epochs={max_epochs!r}. "
            "Pass the most epochs one model may train, e.g. max_epochs=100."
        )
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise ValueError(
            f"factor must be an integer >= 2, but got factor={factor!r}. Pass e.g. "
            "factor=3 to keep a third of the trials in each round."
        )
    if hyperband_iterations is not None and (
        isinstance(hyperband_iterations, bool)
        or not isinstance(hyperband_iterations, int)
        or hyperband_iterations < 1
    ):
        raise ValueError(
            "hyperband_iterations must be an integer >= 1 or None, but got "
            f"hyperband_iterations={hyperband_iterations!r}. Pass e.g. 1, or None "
            "to repeat the brackets until the search space is exhausted."
        )
