"""Concurrent trials in worker processes: one GPU per slot, no shared Keras state."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest
from mlflow import MlflowClient
from pipeline_runs import experiment_runs, split_runs
from pipeline_specs import write_tiny_spec

from flows.tuning import tune_flow

pytestmark = pytest.mark.usefixtures("prefect_backend")

MAX_TRIALS_PER_WORKER = 2


def test_slots_pinned_and_isolated(
    tmp_path: Path,
    digits_npz: Path,
    tracking_uri: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state_log = tmp_path / "keras_state.jsonl"
    state_log.touch()
    monkeypatch.setenv("TUNEFLOW_TEST_STATE_LOG", str(state_log))
    # Two fake GPUs: the spec's gpus = "auto" reads them from here.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment="isolation",
        max_trials=6,
        epochs=1,
        hypermodel="hypermodels:GlobalStateModel",
        extra=f"concurrency = 2\nmax_trials_per_worker = {MAX_TRIALS_PER_WORKER}",
    )

    result = tune_flow(str(spec_path))

    assert [t["status"] for t in result.trials] == ["COMPLETED"] * 6
    _, children = split_runs(experiment_runs(MlflowClient(tracking_uri), "isolation"))
    tagged = [c.data.tags["tuneflow.cuda_visible_devices"] for c in children]
    assert len(tagged) == 6
    assert set(tagged) == {"3", "5"}

    entries = [
        json.loads(line) for line in state_log.read_text(encoding="utf-8").splitlines()
    ]
    trials = [e for e in entries if e["units"] is not None]
    assert len(trials) == 6
    gpus_by_pid: dict[int, set[str]] = collections.defaultdict(set)
    for entry in trials:
        gpus_by_pid[entry["pid"]].add(entry["cuda_visible_devices"])
    # Each slot's processes see one fake GPU, and replacement processes keep it.
    assert all(len(gpus) == 1 for gpus in gpus_by_pid.values())
    assert set().union(*gpus_by_pid.values()) == {"3", "5"}
    trials_by_pid = collections.Counter(entry["pid"] for entry in trials)
    assert len(trials_by_pid) >= 3
    assert max(trials_by_pid.values()) <= MAX_TRIALS_PER_WORKER
    # Some process ran two trials, so the second could have seen the first's
    # changes. Every trial starts from Keras's defaults instead.
    assert max(trials_by_pid.values()) == 2
    for entry in trials:
        assert entry["epsilon_after_build"] == 0.5
        assert entry["epsilon"] == 1e-7
        assert entry["image_data_format"] == "channels_last"
        assert entry["layer_name"] == "dense"
