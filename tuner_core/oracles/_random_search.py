"""Random search: each trial draws every active hyperparameter at random."""

from __future__ import annotations

from typing import Any

import numpy as np

from tuner_core._hyperparameters import HyperParameters
from tuner_core._search_space import iterate_configurations
from tuner_core._trial import TrialStatus
from tuner_core.oracles._base import Oracle, config_key

MAX_DRAWS_PER_TRIAL = 100


def sample_configuration(space: HyperParameters, rng: np.random.Generator) -> dict[str, Any]:
    """Draw a value for every hyperparameter that the earlier draws make active."""
    probe = space.copy()
    values: dict[str, Any] = {}
    probe._values = values
    for entry in space.space:
        if entry.name in values or not probe.is_active(entry):
            continue
        values[entry.name] = entry.random_sample(rng)
    return values


class RandomSearchOracle(Oracle):
    """Draws configurations at random, never repeating one.

    Draws are seeded by `(seed, trial number)`, so a resumed search draws what
    the original would have. When a finite space has fewer distinct
    configurations than `max_trials`, each runs once and the search stops.
    """

    def populate_space(self, trial_number: int) -> dict[str, Any]:
        seen = self.seen_keys()
        size = self.space_size()
        if size is not None and len(seen) >= size:
            return {
                "status": TrialStatus.STOPPED,
                "message": f"search space exhausted after {size} unique configurations",
            }

        rng = np.random.default_rng([self.seed, trial_number])
        for _ in range(MAX_DRAWS_PER_TRIAL):
            values = sample_configuration(self.space, rng)
            if config_key(values) not in seen:
                return {"status": TrialStatus.RUNNING, "values": values}

        if size is not None:
            remaining = [
                c for c in iterate_configurations(self.space) if config_key(c) not in seen
            ]
            chosen = remaining[int(rng.integers(len(remaining)))]
            return {"status": TrialStatus.RUNNING, "values": chosen}
        return {
            "status": TrialStatus.STOPPED,
            "message": (
                f"{MAX_DRAWS_PER_TRIAL} random draws in a row repeated configurations "
                "that already ran; the search space looks exhausted"
            ),
        }
