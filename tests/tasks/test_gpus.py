"""Finding the visible GPUs and giving each worker slot one, without a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.gpus import assign_gpus, gpu_tags, resolve_gpus, visible_gpus

NO_FOLDER = Path("/nonexistent/nvidia/gpus")


@pytest.mark.parametrize(
    ("listed", "expected"),
    [
        ("3,5", ["3", "5"]),
        (" 0 , 1 ", ["0", "1"]),
        ("GPU-8f2c,MIG-1a", ["GPU-8f2c", "MIG-1a"]),
        ("0,-1,2", ["0"]),
        ("-1", []),
        ("", []),
    ],
)
def test_visible_gpus_from_environment(listed: str, expected: list[str]) -> None:
    environ = {"CUDA_VISIBLE_DEVICES": listed}

    assert visible_gpus(environ, NO_FOLDER) == expected


def test_visible_gpus_from_driver_folder(tmp_path: Path) -> None:
    for address in ("0000:3b:00.0", "0000:af:00.0"):
        (tmp_path / address).mkdir()

    assert visible_gpus({}, tmp_path) == ["0", "1"]


def test_visible_gpus_none_without_driver() -> None:
    assert visible_gpus({}, NO_FOLDER) == []


def test_resolve_gpus_auto_and_list() -> None:
    environ = {"CUDA_VISIBLE_DEVICES": "2,7"}

    assert resolve_gpus("auto", environ, NO_FOLDER) == ["2", "7"]
    assert resolve_gpus([0, "GPU-8f2c"], environ, NO_FOLDER) == ["0", "GPU-8f2c"]
    assert resolve_gpus([], environ, NO_FOLDER) == []


def test_assign_gpus_one_per_slot() -> None:
    assert assign_gpus(["3", "5"], 2) == ["3", "5"]
    assert assign_gpus(["3", "5", "6"], 2) == ["3", "5"]
    assert assign_gpus([], 2) == [None, None]


def test_assign_gpus_rejects_shortage() -> None:
    with pytest.raises(
        ValueError,
        match=r"concurrency=2 needs one GPU per concurrent trial, but 1 GPU\(s\) are "
        r"available: \['0'\]\. Set concurrency to at most 1, or set gpus = \[\]",
    ):
        assign_gpus(["0"], 2)


def test_gpu_tags_only_when_pinned() -> None:
    assert gpu_tags({"CUDA_VISIBLE_DEVICES": "5"}) == {
        "tuneflow.cuda_visible_devices": "5"
    }
    assert gpu_tags({}) == {}
