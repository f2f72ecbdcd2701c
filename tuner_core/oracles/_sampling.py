"""Drawing a random configuration that no earlier trial used."""

from __future__ import annotations

from typing import Any

import numpy as np

from tuner_core._hyperparameters import HyperParameters
from tuner_core._search_space import iterate_configurations
from tuner_core.oracles._base import config_key
from tuner_core.oracles._random_search import sample_configuration

MAX_RANDOM_DRAWS = 100


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
