"""Oracles: the strategies that choose each trial's hyperparameter values."""

from tuner_core.oracles._base import Oracle
from tuner_core.oracles._random_search import RandomSearchOracle

__all__ = ["Oracle", "RandomSearchOracle"]
