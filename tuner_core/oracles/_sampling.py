"""Drawing configurations that no earlier trial used: spread-out points, then random."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy.stats import qmc

from tuner_core._hyperparameters import HyperParameters
from tuner_core._search_space import iterate_configurations
from tuner_core.oracles._base import config_key

MAX_RANDOM_DRAWS = 100


def sample_configuration(
    space: HyperParameters, rng: np.random.Generator
) -> dict[str, Any]:
    """Draw a value for every hyperparameter that the earlier draws make active."""
    probe = space.copy()
    values: dict[str, Any] = {}
    probe._values = values
    for entry in space.space:
        if entry.name in values or not probe.is_active(entry):
            continue
        values[entry.name] = entry.random_sample(rng)
    return values


def draw_unseen_configuration(
    space: HyperParameters,
    rng: np.random.Generator,
    seen: set[str],
    space_size: int | None,
) -> dict[str, Any] | None:
    """Return a random configuration whose key is not in `seen`, or None.

    Draws at random up to `MAX_RANDOM_DRAWS` times. After that, a finite space
    (`space_size` is not None) is enumerated and one of the configurations left
    is picked, so None there means the space is exhausted. For an unbounded
    space, None means every draw repeated a configuration.
    """
    for _ in range(MAX_RANDOM_DRAWS):
        values = sample_configuration(space, rng)
        if config_key(values) not in seen:
            return values

    if space_size is None:
        return None
    remaining = [c for c in iterate_configurations(space) if config_key(c) not in seen]
    if not remaining:
        return None
    return remaining[int(rng.integers(len(remaining)))]


def draw_spread_configuration(
    space: HyperParameters,
    seed: int,
    index: int,
    rng: np.random.Generator,
    seen: set[str],
    space_size: int | None,
) -> dict[str, Any] | None:
    """Return the configuration at point `index` of a Sobol sequence, if unseen.

    The first n points of a scrambled Sobol sequence cover the search space
    more evenly than n independent draws, which matters when a search has
    only a few trials. Each range is split into strata, and the points fill
    them in turn. When that configuration already ran (a small or discrete
    space maps several points to one configuration), the configuration comes
    from `draw_unseen_configuration` with `rng` instead. Returns None when
    that does too.
    """
    values = configuration_at(space, sobol_point(seed, index, len(space.space)))
    if config_key(values) not in seen:
        return values
    return draw_unseen_configuration(space, rng, seen, space_size)


def sobol_point(seed: int, index: int, num_dimensions: int) -> np.ndarray:
    """Return point `index` (from 0) of a scrambled Sobol sequence in [0, 1)^d.

    The sequence depends only on `seed` and `num_dimensions`, so point `index`
    is the same in every process: a resumed search draws the points the
    interrupted one would have drawn.
    """
    num_dimensions = max(num_dimensions, 1)
    sampler = qmc.Sobol(
        num_dimensions,
        scramble=True,
        seed=np.random.default_rng([seed, num_dimensions]),
    )
    if index > 0:
        # SciPy 1.17 rejects fast_forward(0).
        sampler.fast_forward(index)
    with warnings.catch_warnings():
        # SciPy warns that prefixes of other lengths than powers of 2 lose the
        # balance properties. Searches stop at any trial count, and even such
        # prefixes are spread more evenly than independent draws.
        warnings.simplefilter("ignore", UserWarning)
        return sampler.random(1)[0]


def configuration_at(space: HyperParameters, point: np.ndarray) -> dict[str, Any]:
    """Return the values that `point` gives the active hyperparameters.

    Coordinate i of `point` is the `prob_to_value` input of entry i of
    `space.space`. An entry that the values before it make inactive takes no
    value, and its coordinate is unused.
    """
    probe = space.copy()
    values: dict[str, Any] = {}
    probe._values = values
    for entry, prob in zip(space.space, point, strict=False):
        if entry.name in values or not probe.is_active(entry):
            continue
        values[entry.name] = entry.prob_to_value(float(prob))
    return values
