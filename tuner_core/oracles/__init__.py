"""Oracles: the strategies that choose each trial's hyperparameter values."""

from tuner_core.oracles._base import Oracle
from tuner_core.oracles._bayesian import BayesianOptimizationOracle
from tuner_core.oracles._grid_search import GridSearchOracle
from tuner_core.oracles._hyperband import (
    BracketSchedule,
    HyperbandOracle,
    HyperbandTrial,
)
from tuner_core.oracles._random_search import RandomSearchOracle

__all__ = [
    "BayesianOptimizationOracle",
    "BracketSchedule",
    "GridSearchOracle",
    "HyperbandOracle",
    "HyperbandTrial",
    "Oracle",
    "RandomSearchOracle",
]
