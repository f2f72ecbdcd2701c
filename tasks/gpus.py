"""GPUs for worker processes: which ones are visible, and which worker gets which.

When GPUs are visible, each concurrent trial gets a GPU of its own: worker slot i
starts every one of its processes with CUDA_VISIBLE_DEVICES set to the i-th GPU
id, before the process imports TensorFlow. Nothing here imports TensorFlow or
initializes CUDA, so finding the GPUs allocates no GPU memory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

AUTO = "auto"
CUDA_VISIBLE_DEVICES = "CUDA_VISIBLE_DEVICES"
CUDA_DEVICES_TAG = "tuneflow.cuda_visible_devices"
# The NVIDIA driver on Linux lists one folder per GPU here, named by PCI address.
NVIDIA_GPUS_FOLDER = Path("/proc/driver/nvidia/gpus")


def visible_gpus(
    environ: Mapping[str, str] | None = None,
    gpus_folder: Path = NVIDIA_GPUS_FOLDER,
) -> list[str]:
    """Return the ids of the GPUs this process may use, as CUDA_VISIBLE_DEVICES entries.

    A set CUDA_VISIBLE_DEVICES lists them. Like CUDA, the list ends at the
    first empty or negative entry, so "" and "-1" hide every GPU. Without the
    variable, each folder in `gpus_folder` is one GPU, and the ids are the
    CUDA indices 0 to n-1.
    """
    environ = os.environ if environ is None else environ
    listed = environ.get(CUDA_VISIBLE_DEVICES)
    if listed is not None:
        ids = []
        for entry in listed.split(","):
            entry = entry.strip()
            if not entry or entry.startswith("-"):
                break
            ids.append(entry)
        return ids

    # NOTE: a system without this folder (not Linux, or another GPU vendor)
    # reports no GPUs. Name them in the spec's `gpus` list instead.
    if not gpus_folder.is_dir():
        return []
    num_gpus = sum(1 for entry in gpus_folder.iterdir() if entry.is_dir())
    return [str(index) for index in range(num_gpus)]


def resolve_gpus(
    setting: str | Sequence[int | str],
    environ: Mapping[str, str] | None = None,
    gpus_folder: Path = NVIDIA_GPUS_FOLDER,
) -> list[str]:
    """Return the GPU ids of a spec's `gpus` setting, the visible ones for "auto"."""
    if setting == AUTO:
        return visible_gpus(environ, gpus_folder)
    return [str(gpu) for gpu in setting]


def assign_gpus(gpu_ids: Sequence[str], concurrency: int) -> list[str | None]:
    """Return the GPU id of each worker slot, or None for every slot without GPUs.

    Slot i gets `gpu_ids[i]`, so `concurrency` trials run on as many GPUs,
    one each. GPUs beyond `concurrency` stay unused.

    Raises:
        ValueError: there are GPUs, but fewer than `concurrency`.
    """
    if not gpu_ids:
        return [None] * concurrency
    if concurrency > len(gpu_ids):
        raise ValueError(gpu_shortage_message(list(gpu_ids), concurrency))
    return list(gpu_ids[:concurrency])


def gpu_shortage_message(gpu_ids: list[str], concurrency: int) -> str:
    """Describe a concurrency above the GPU count, with both ways to fix it."""
    return (
        f"concurrency={concurrency} needs one GPU per concurrent trial, but "
        f"{len(gpu_ids)} GPU(s) are available: {gpu_ids}. Set concurrency to at "
        f"most {len(gpu_ids)}, or set gpus = [] so that every worker process "
        "sees every GPU and the trials share them."
    )


def gpu_tags(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the MLflow tag with this process's CUDA_VISIBLE_DEVICES, if set."""
    environ = os.environ if environ is None else environ
    devices = environ.get(CUDA_VISIBLE_DEVICES)
    return {} if devices is None else {CUDA_DEVICES_TAG: devices}
