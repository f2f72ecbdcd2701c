"""Pre-built hypermodels with KerasTuner's search spaces and compile settings.

Each hypermodel declares the hyperparameters of its KerasTuner 1.4.8
counterpart, with the same names, types, ranges and defaults. None of them
downloads weights.
"""

from tuner_core.applications._augment import HyperImageAugment
from tuner_core.applications._efficientnet import HyperEfficientNet
from tuner_core.applications._resnet import HyperResNet
from tuner_core.applications._xception import HyperXception

__all__ = [
    "HyperEfficientNet",
    "HyperImageAugment",
    "HyperResNet",
    "HyperXception",
]
