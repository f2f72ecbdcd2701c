"""Random search: each trial draws every active hyperparameter."""

from __future__ import annotations

from typing import Any

import numpy as np

from tuner_core._trial import TrialStatus
from tuner_core.oracles._base import Oracle
from tuner_core.oracles._sampling import draw_spread_configuration


class RandomSearchOracle(Oracle):
    """Draws configurations at random, never repeating one.

    Trial n takes point n of a scrambled Sobol sequence (a randomized
    quasi-random sequence) over the search space, which spreads a few trials
    more evenly over each range than independent uniform draws. A point that
    maps to a configuration that already ran is replaced by a uniform random
    draw. Draws are seeded by `(seed, trial number)`, so a resumed search draws
    what the original would have. When a finite space has fewer distinct
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
        values = draw_spread_configuration(
            self.space, self.seed, trial_number, rng, seen, size
        )
        if values is not None:
            return {"status": TrialStatus.RUNNING, "values": values}
        return {
            "status": TrialStatus.STOPPED,
            "message": (
                "every random draw repeated a configuration that already ran; the "
                "search space looks exhausted"
            ),
        }
