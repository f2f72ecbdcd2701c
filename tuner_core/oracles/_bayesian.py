"""Bayesian optimization with a Gaussian process over the [0, 1] encoding."""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import numpy as np
import scipy.optimize
import scipy.special
import scipy.stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from tuner_core._hp_types import Fixed, HyperParameter
from tuner_core._hyperparameters import HyperParameters
from tuner_core._search_space import iterate_configurations
from tuner_core._trial import TrialStatus
from tuner_core.oracles._base import Oracle, config_key
from tuner_core.oracles._sampling import draw_spread_configuration

logger = logging.getLogger(__name__)

NUM_RANDOM_CANDIDATES = 500
NUM_LOCAL_SEARCHES = 5
MAX_ENUMERATED_CONFIGURATIONS = 5_000
NUM_KERNEL_RESTARTS = 5
NEAR_DUPLICATE_DISTANCE = 1e-3
# Bounds of the kernel's fitted settings, for points in [0, 1]^d and scores
# transformed to standard normal quantiles. A length scale below 0.01 would
# fit noise between neighboring trials, and one above 100 already makes a
# hyperparameter irrelevant.
LENGTH_SCALE_BOUNDS = (1e-2, 1e2)
AMPLITUDE_BOUNDS = (1e-2, 1e2)
NOISE_LEVEL_BOUNDS = (1e-6, 1.0)


class SpaceEncoding:
    """A map between configurations of a search space and points of [0, 1]^d.

    Each dimension is the `value_to_prob` of one hyperparameter that can take
    more than one value; Fixed entries and one-value ranges (such as Int 5..5)
    get no dimension. An entry that a configuration leaves inactive is encoded
    at its default.
    """

    def __init__(self, space: HyperParameters) -> None:
        self.space = space
        self.entries = space.space
        self.varying = [i for i, entry in enumerate(self.entries) if _varies(entry)]
        self._probe = space.copy()

    @property
    def num_dimensions(self) -> int:
        return len(self.varying)

    def encode(self, values: dict[str, Any]) -> np.ndarray:
        self._probe._values = values
        point = []
        for index in self.varying:
            entry = self.entries[index]
            value = entry.default
            if entry.name in values and self._probe.is_active(entry):
                value = values[entry.name]
            point.append(entry.value_to_prob(value))
        return np.array(point, dtype=float)

    def decode(self, point: np.ndarray) -> dict[str, Any]:
        """Return the configuration at `point`, snapped to each entry's grid."""
        probs = {
            index: float(np.clip(p, 0.0, 1.0))
            for index, p in zip(self.varying, point, strict=True)
        }
        values: dict[str, Any] = {}
        self._probe._values = values
        for index, entry in enumerate(self.entries):
            if entry.name in values or not self._probe.is_active(entry):
                continue
            values[entry.name] = entry.prob_to_value(probs.get(index, 0.5))
        return values


def _varies(entry: HyperParameter) -> bool:
    if isinstance(entry, Fixed):
        return False
    grid = entry.grid_values()
    if grid is not None:
        return len(grid) > 1
    return getattr(entry, "min_value", None) != getattr(entry, "max_value", None)


class BayesianOptimizationOracle(Oracle):
    """Proposes configurations with a Gaussian process and a confidence bound.

    The first `num_initial_points` trials take the points of a scrambled Sobol
    sequence, as RandomSearchOracle does. Once that many trials have a finite
    score, each new trial fits a Gaussian process (scikit-learn) to those
    scores over the [0, 1] encoding of the configurations. The scores enter
    the fit as the normal quantiles of their ranks, so a few very bad trials
    do not set its scale. The kernel is a Matern 5/2 kernel with one length
    scale per hyperparameter, times a fitted amplitude, plus fitted noise. The
    oracle then proposes the unseen configuration with the best confidence
    bound: the upper bound `mean + beta * std` of the score when maximizing,
    the lower bound when minimizing. Running trials enter the fit as if they
    had scored the worst score so far, so parallel workers get different
    proposals. NaN scores and failed trials stay out of the fit, but their
    configurations are never proposed again. Reloading a saved state keeps this oracle's
    `num_initial_points`, `alpha` and `beta`, so a resumed search uses the
    settings it was given.

    Args:
        objective: The metric name or `Objective` to optimize.
        max_trials: The maximum number of trials. Defaults to 10.
        num_initial_points: Random trials before the first model, or None for
            three times the number of varying hyperparameters (at least 3).
        alpha: The noise variance added to the kernel's diagonal, on top of
            the fitted noise. Defaults to 1e-4.
        beta: The weight of the standard deviation in the confidence bound;
            larger values explore more. Defaults to 2.6.
        seed: The random seed. Proposals depend on `(seed, trial number)`.
        hyperparameters: Entries that override the hypermodel's own.
        allow_new_entries, tune_new_entries: As for every oracle.
        max_retries_per_trial: Retries of a failing trial. Defaults to 0.
        max_consecutive_failed_trials: Failed trials in a row that stop the
            search. Defaults to 3.
    """

    def __init__(
        self,
        objective: Any = None,
        max_trials: int = 10,
        num_initial_points: int | None = None,
        alpha: float = 1e-4,
        beta: float = 2.6,
        seed: int | None = None,
        hyperparameters: HyperParameters | None = None,
        allow_new_entries: bool = True,
        tune_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
    ) -> None:
        if num_initial_points is not None and (
            not isinstance(num_initial_points, int) or num_initial_points < 1
        ):
            raise ValueError(
                "num_initial_points must be an integer >= 1 or None, but got "
                f"num_initial_points={num_initial_points!r}. Pass e.g. 5, or None "
                "for three times the number of hyperparameters."
            )
        if not alpha > 0:
            raise ValueError(
                f"alpha must be > 0, but got alpha={alpha!r}. Pass a small noise "
                "variance such as 1e-4."
            )
        if not beta >= 0:
            raise ValueError(
                f"beta must be >= 0, but got beta={beta!r}. Pass e.g. 2.6. Larger "
                "values explore more."
            )
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
        self.num_initial_points = num_initial_points
        self.alpha = alpha
        self.beta = beta

    def populate_space(self, trial_number: int) -> dict[str, Any]:
        seen = self.seen_keys()
        size = self.space_size()
        if size is not None and len(seen) >= size:
            return _exhausted(size)

        rng = np.random.default_rng([self.seed, trial_number])
        encoding = SpaceEncoding(self.space)
        num_initial = self.num_initial_points or max(3 * encoding.num_dimensions, 3)
        values = None
        if encoding.num_dimensions > 0:
            observed, scores, num_scored = self._observations(encoding)
            if num_scored >= max(num_initial, 2):
                try:
                    values = self.propose(encoding, observed, scores, seen, size, rng)
                except (np.linalg.LinAlgError, ValueError) as error:
                    logger.warning(
                        "Trial %d: fitting the Gaussian process failed (%s), so the "
                        "trial gets a random configuration instead",
                        trial_number,
                        error,
                    )
        if values is None:
            values = draw_spread_configuration(
                self.space, self.seed, trial_number, rng, seen, size
            )
        if values is None:
            if size is not None:
                return _exhausted(size)
            return {
                "status": TrialStatus.STOPPED,
                "message": "every proposal and random draw repeated a configuration",
            }
        return {"status": TrialStatus.RUNNING, "values": values}

    # The model of the objective.

    def _observations(
        self, encoding: SpaceEncoding
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Return points and scores to minimize, and how many trials have a score.

        The points include the running trials, each with the worst score so far.
        """
        points, scores, running = [], [], []
        for trial in self.trials.values():
            values = trial.hyperparameters.values
            if trial.status == TrialStatus.RUNNING:
                running.append(encoding.encode(values))
                continue
            score = trial.score
            if trial.status != TrialStatus.COMPLETED or score is None:
                continue
            if not math.isfinite(score):
                continue
            points.append(encoding.encode(values))
            scores.append(score if self.objective.direction == "min" else -score)

        num_scored = len(scores)
        scores = list(normal_scores(np.array(scores)))
        if scores and running:
            worst = max(scores)
            points.extend(running)
            scores.extend([worst] * len(running))
        width = encoding.num_dimensions
        return (
            np.array(points, dtype=float).reshape(-1, width),
            np.array(scores),
            num_scored,
        )

    def _fit(
        self, observed: np.ndarray, scores: np.ndarray, rng: np.random.Generator
    ) -> Any:
        width = observed.shape[1]
        kernel = ConstantKernel(1.0, AMPLITUDE_BOUNDS) * Matern(
            length_scale=np.full(width, 0.5),
            length_scale_bounds=LENGTH_SCALE_BOUNDS,
            nu=2.5,
        ) + WhiteKernel(1e-2, NOISE_LEVEL_BOUNDS)
        model = GaussianProcessRegressor(
            kernel=kernel,
            alpha=self.alpha,
            normalize_y=True,
            n_restarts_optimizer=NUM_KERNEL_RESTARTS,
            random_state=int(rng.integers(2**31 - 1)),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(observed, scores)
        return model

    def propose(
        self,
        encoding: SpaceEncoding,
        observed: np.ndarray,
        scores: np.ndarray,
        seen: set[str],
        size: int | None,
        rng: np.random.Generator,
    ) -> dict[str, Any] | None:
        """Return the unseen configuration with the best confidence bound, or None.

        `observed` are encoded points and `scores` their scores to minimize. The
        candidates avoid `seen` and every configuration in `trials`.
        """
        model = self._fit(observed, scores, rng)

        def bound(points: np.ndarray) -> np.ndarray:
            mean, std = model.predict(np.atleast_2d(points), return_std=True)
            return mean - self.beta * std

        if size is not None and size <= MAX_ENUMERATED_CONFIGURATIONS:
            candidates = [
                c
                for c in iterate_configurations(self.space)
                if config_key(c) not in seen
            ]
        else:
            candidates = self._searched_candidates(encoding, bound, seen, rng)
        if not candidates:
            return None

        values_bounds = bound(np.array([encoding.encode(c) for c in candidates]))
        best = int(np.argmin(values_bounds))
        logger.debug(
            "Bayesian optimization chose %s, confidence bound %.4g, from %d candidates",
            candidates[best],
            values_bounds[best],
            len(candidates),
        )
        return candidates[best]

    def _searched_candidates(
        self,
        encoding: SpaceEncoding,
        bound: Any,
        seen: set[str],
        rng: np.random.Generator,
    ) -> list[dict[str, Any]]:
        """Return unseen configurations from random points and local searches."""
        width = encoding.num_dimensions
        starts = rng.random((NUM_RANDOM_CANDIDATES, width))
        order = np.argsort(bound(starts))
        points = list(starts)
        for start in starts[order[:NUM_LOCAL_SEARCHES]]:
            result = scipy.optimize.minimize(
                lambda point: float(bound(point)[0]),
                x0=start,
                bounds=[(0.0, 1.0)] * width,
                method="L-BFGS-B",
                options={"maxiter": 50},
            )
            points.append(result.x)

        # A point within NEAR_DUPLICATE_DISTANCE of an earlier trial in every
        # dimension repeats it in all but name. This matters after a NaN score:
        # the model never saw that point, so its bound there stays attractive.
        earlier = np.array(
            [encoding.encode(t.hyperparameters.values) for t in self.trials.values()]
        ).reshape(-1, width)
        candidates: dict[str, dict[str, Any]] = {}
        for point in points:
            values = encoding.decode(point)
            key = config_key(values)
            if key in seen or key in candidates:
                continue
            snapped = encoding.encode(values)
            if (
                len(earlier)
                and np.abs(earlier - snapped).max(axis=1).min()
                < NEAR_DUPLICATE_DISTANCE
            ):
                continue
            candidates[key] = values
        return list(candidates.values())

    # Saving and reloading.

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state.update(
            num_initial_points=self.num_initial_points, alpha=self.alpha, beta=self.beta
        )
        return state


def normal_scores(scores: np.ndarray) -> np.ndarray:
    """Replace each score by the standard normal quantile of its rank.

    A few very bad trials (a diverging learning rate, say) would otherwise
    set the scale of the Gaussian process, which then treats the small
    differences among good trials as noise. The transform keeps the order of
    the scores, gives equal scores equal values and spaces the values like a
    normal sample, whatever the scores' own distribution.
    """
    if len(scores) == 0:
        return scores.astype(float)
    ranks = scipy.stats.rankdata(scores)
    return scipy.special.ndtri((ranks - 0.5) / len(scores))


def _exhausted(size: int) -> dict[str, Any]:
    return {
        "status": TrialStatus.STOPPED,
        "message": f"search space exhausted after {size} unique configurations",
    }
