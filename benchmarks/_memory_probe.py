"""The digits hypermodel with a probe that records which process ran each trial.

`benchmarks/memory.py` names `_memory_probe:DigitsProbe` as the spec's
hypermodel. After each trial's `model.fit`, the probe appends one JSON line
to the file named by $TUNEFLOW_MEMORY_PROBE_FILE. The line contains the
process id, its resident memory in MB and the trial's learning rate. The
learning rate identifies the trial, because the benchmark samples it from a
continuous range. The product's trial results do not contain the id of the
process that ran them.
"""

from __future__ import annotations

import json
import os
from typing import Any

import psutil
from digits_model import build_model

import tuner_core

PROBE_FILE_VARIABLE = "TUNEFLOW_MEMORY_PROBE_FILE"


class DigitsProbe(tuner_core.HyperModel):
    """Builds `examples/digits_model.py`'s model and records the process after fit."""

    def build(self, hp: tuner_core.HyperParameters) -> Any:
        return build_model(hp)

    def fit(
        self, hp: tuner_core.HyperParameters, model: Any, *args: Any, **kwargs: Any
    ) -> Any:
        history = model.fit(*args, **kwargs)
        record = {
            "pid": os.getpid(),
            "rss_mb": psutil.Process().memory_info().rss / 2**20,
            "learning_rate": hp.get("learning_rate"),
        }
        with open(os.environ[PROBE_FILE_VARIABLE], "a", encoding="utf-8") as probe_file:
            probe_file.write(json.dumps(record) + "\n")
        return history
