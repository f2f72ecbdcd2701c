"""Worker slots: the hard time limit, GPU pinning and process replacement."""

from __future__ import annotations

import time

import psutil
import pytest
from worker_calls import describe_worker

from tasks.workers import TrialWorkers, WorkerTimeoutError


def test_hard_limit_kills_only_late_call() -> None:
    with TrialWorkers(
        max_workers=2,
        trial_timeout_seconds=1.0,
        stop_grace_seconds=1.0,
        preload_modules=(),
    ) as workers:
        workers.warm_up()
        hung = workers.submit(time.sleep, 60)
        time.sleep(1.0)
        # Still running when the hung call's process is killed, at about 2 s.
        other = workers.submit(describe_worker, 1.5)

        with pytest.raises(WorkerTimeoutError, match="past the limit of 1 s") as error:
            hung.result(timeout=10)
        other_pid, _ = other.result(timeout=10)
        other_survived = psutil.pid_exists(other_pid)
        after_kill_pid, _ = workers.submit(describe_worker).result(timeout=30)

    killed = error.value
    assert killed.elapsed_seconds >= 2.0
    assert not psutil.pid_exists(killed.pid)
    assert other_pid != killed.pid
    assert other_survived
    assert after_kill_pid != killed.pid


def test_gpu_slots_keep_ids_across_replacement() -> None:
    rounds = []
    with TrialWorkers(
        max_workers=2,
        max_trials_per_worker=1,
        gpu_ids=["3", "5"],
        preload_modules=(),
    ) as workers:
        for _ in range(3):
            futures = [workers.submit(describe_worker, 0.3) for _ in range(2)]
            rounds.append([future.result(timeout=60) for future in futures])

    for described in rounds:
        assert sorted(gpu for _, gpu in described) == ["3", "5"]
    gpu_by_pid: dict[int, set[str | None]] = {}
    for described in rounds:
        for pid, gpu in described:
            gpu_by_pid.setdefault(pid, set()).add(gpu)
    assert len(gpu_by_pid) == 6
    assert all(len(gpus) == 1 for gpus in gpu_by_pid.values())


def test_no_gpus_leave_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with TrialWorkers(max_workers=2, preload_modules=()) as workers:
        assert workers.gpus == [None, None]
        _, gpu = workers.submit(describe_worker).result(timeout=60)

    assert gpu is None


def test_more_workers_than_gpus_rejected() -> None:
    with pytest.raises(ValueError, match=r"concurrency=3 needs one GPU per concurrent"):
        TrialWorkers(max_workers=3, gpu_ids=["0", "1"], preload_modules=())
