"""Functions that tests run in worker processes, which import them by module name."""

from __future__ import annotations

import os
import time


def describe_worker(delay_seconds: float = 0.0) -> tuple[int, str | None]:
    """Wait `delay_seconds`, then return this process's id and CUDA_VISIBLE_DEVICES."""
    time.sleep(delay_seconds)
    return os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES")
