"""Resuming a saved search with overwrite=False: after a kill, with new settings."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import tuner_core
from tuner_core import TrialStatus

SCRIPT = Path(__file__).with_name("interrupted_search.py")
REPO_ROOT = Path(__file__).resolve().parents[2]


def _run_script(directory: Path, log_file: Path, kill_at_trial: int) -> int:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    arguments = [str(directory), str(log_file), str(kill_at_trial)]
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), *arguments],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return completed.returncode


def _saved_trials(directory: Path) -> list[dict[str, Any]]:
    state = json.loads((directory / "interrupted" / "oracle.json").read_text())
    return sorted(state["trials"], key=lambda t: t["number"])


def test_killed_search_resumes(tmp_path: Path) -> None:
    log_file = tmp_path / "fits.jsonl"

    returncode = _run_script(tmp_path, log_file, kill_at_trial=4)

    assert returncode == -signal.SIGKILL
    first_lines = log_file.read_text().splitlines()
    assert len(first_lines) == 4
    saved = _saved_trials(tmp_path)
    assert [t["status"] for t in saved] == ["COMPLETED"] * 3 + ["RUNNING"]
    interrupted = saved[3]

    returncode = _run_script(tmp_path, log_file, kill_at_trial=0)

    assert returncode == 0
    lines = log_file.read_text().splitlines()
    assert lines[:4] == first_lines
    assert lines[4] == first_lines[3], "the interrupted trial must run first"
    assert len(lines) == 9
    counts = collections.Counter(lines)
    assert counts[first_lines[3]] == 2
    assert sorted(counts.values()) == [1] * 7 + [2]
    trials = _saved_trials(tmp_path)
    assert len(trials) == 8
    assert all(t["status"] == "COMPLETED" for t in trials)
    assert trials[3]["trial_id"] == interrupted["trial_id"]
    assert trials[3]["values"] == interrupted["values"]


class CountingHyperModel(tuner_core.HyperModel):
    """A tiny regression hypermodel that records the values of each fit."""

    def __init__(self, max_units: int = 32, extra: str | None = None) -> None:
        super().__init__()
        self.max_units = max_units
        self.extra = extra
        self.fits: list[dict[str, Any]] = []

    def build(self, hp: tuner_core.HyperParameters) -> keras.Model:
        units = hp.Int("units", 4, self.max_units, step=4)
        if self.extra is not None:
            hp.Boolean(self.extra)
        model = keras.Sequential(
            [keras.Input((4,)), keras.layers.Dense(units), keras.layers.Dense(1)]
        )
        model.compile(optimizer="adam", loss="mse")
        return model

    def fit(
        self, hp: tuner_core.HyperParameters, model: Any, *args: Any, **kwargs: Any
    ) -> Any:
        self.fits.append(dict(hp.values))
        return model.fit(*args, **kwargs)


def _regression_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((32, 4)).astype("float32")
    return x, x.sum(axis=1, keepdims=True)


def _tuner(tmp_path: Path, hypermodel: tuner_core.HyperModel, **kwargs: Any) -> Any:
    arguments: dict[str, Any] = {
        "objective": "val_loss",
        "max_trials": 2,
        "seed": 7,
        "directory": tmp_path,
        "project_name": "resumed",
        **kwargs,
    }
    return tuner_core.RandomSearch(hypermodel, **arguments)


def _search(tuner: Any) -> None:
    x, y = _regression_data()
    tuner.search(x, y, epochs=1, validation_data=(x, y))


def test_larger_max_trials_runs_extra(tmp_path: Path) -> None:
    first_model = CountingHyperModel()
    first = _tuner(tmp_path, first_model)
    _search(first)
    before = {t.trial_id: (t.values, t.score) for t in first.oracle.trials.values()}

    second_model = CountingHyperModel()
    second = _tuner(tmp_path, second_model, max_trials=4)
    _search(second)

    trials = second.oracle.trials
    assert sorted(trials) == ["00", "01", "02", "03"]
    assert all(t.status == TrialStatus.COMPLETED for t in trials.values())
    for trial_id, (values, score) in before.items():
        assert trials[trial_id].values == values
        assert trials[trial_id].score == score
    assert second_model.fits == [trials["02"].values, trials["03"].values]


def test_interrupted_trial_reruns_in_process(tmp_path: Path) -> None:
    class InterruptedOnce(CountingHyperModel):
        def fit(
            self, hp: tuner_core.HyperParameters, model: Any, *args: Any, **kwargs: Any
        ) -> Any:
            if not self.fits:
                self.fits.append(dict(hp.values))
                raise KeyboardInterrupt
            return super().fit(hp, model, *args, **kwargs)

    hypermodel = InterruptedOnce()
    tuner = _tuner(tmp_path, hypermodel)
    with pytest.raises(KeyboardInterrupt):
        _search(tuner)
    assert tuner.oracle.trials["00"].status == TrialStatus.RUNNING

    _search(tuner)

    trials = tuner.oracle.trials
    assert sorted(trials) == ["00", "01"]
    assert all(t.status == TrialStatus.COMPLETED for t in trials.values())
    first, second = trials["00"].values, trials["01"].values
    assert hypermodel.fits == [first, first, second]


def test_finished_search_reruns_nothing(tmp_path: Path) -> None:
    _search(_tuner(tmp_path, CountingHyperModel()))

    hypermodel = CountingHyperModel()
    tuner = _tuner(tmp_path, hypermodel)
    _search(tuner)

    assert hypermodel.fits == []
    assert len(tuner.oracle.trials) == 2


def test_smaller_max_trials_stops_at_once(tmp_path: Path) -> None:
    _search(_tuner(tmp_path, CountingHyperModel(), max_trials=3))

    hypermodel = CountingHyperModel()
    tuner = _tuner(tmp_path, hypermodel, max_trials=2)
    _search(tuner)

    assert hypermodel.fits == []
    assert len(tuner.oracle.trials) == 3
    assert tuner.remaining_trials == -1


def test_resume_keeps_saved_seed(tmp_path: Path) -> None:
    _search(_tuner(tmp_path, CountingHyperModel()))

    tuner = _tuner(tmp_path, CountingHyperModel(), seed=None, max_trials=3)

    assert tuner.oracle.seed == 7
    assert tuner.seed == 7


def test_oracle_seed_change_raises(tmp_path: Path) -> None:
    _search(_tuner(tmp_path, CountingHyperModel()))
    oracle = tuner_core.RandomSearchOracle(objective="val_loss", max_trials=3, seed=8)

    with pytest.raises(ValueError, match=r"seed was 7, now 8"):
        tuner_core.Tuner(
            CountingHyperModel(), oracle, directory=tmp_path, project_name="resumed"
        )


SPACE_CHANGES = [
    (
        "wider range",
        {"max_units": 64},
        r"units: was Int\(name='units'.*max_value=32.*\), now Int\(name='units'"
        r".*max_value=64",
    ),
    ("added hyperparameter", {"extra": "bias"}, r"bias: added as Boolean\(name='bias'"),
]


@pytest.mark.parametrize(
    ("build_arguments", "pattern"),
    [case[1:] for case in SPACE_CHANGES],
    ids=[case[0] for case in SPACE_CHANGES],
)
def test_changed_space_raises(
    tmp_path: Path, build_arguments: dict[str, Any], pattern: str
) -> None:
    _search(_tuner(tmp_path, CountingHyperModel()))

    with pytest.raises(tuner_core.SearchSpaceChangedError, match=pattern) as raised:
        _tuner(tmp_path, CountingHyperModel(**build_arguments))

    message = str(raised.value)
    assert "overwrite=True" in message
    assert "project_name" in message


def test_removed_hyperparameter_raises(tmp_path: Path) -> None:
    _search(_tuner(tmp_path, CountingHyperModel(extra="bias")))

    with pytest.raises(
        tuner_core.SearchSpaceChangedError, match=r"bias: removed, was Boolean\("
    ):
        _tuner(tmp_path, CountingHyperModel())


SETTING_CHANGES = [
    (
        "objective",
        {"objective": tuner_core.Objective("val_mae", "min")},
        r"objective was \{'name': 'val_loss', 'direction': 'min'\}, now "
        r"\{'name': 'val_mae', 'direction': 'min'\}",
    ),
    ("seed", {"seed": 8}, r"seed was 7, now 8"),
]


@pytest.mark.parametrize(
    ("tuner_arguments", "pattern"),
    [case[1:] for case in SETTING_CHANGES],
    ids=[case[0] for case in SETTING_CHANGES],
)
def test_changed_setting_raises(
    tmp_path: Path, tuner_arguments: dict[str, Any], pattern: str
) -> None:
    _search(_tuner(tmp_path, CountingHyperModel()))

    with pytest.raises(ValueError, match=pattern) as raised:
        _tuner(tmp_path, CountingHyperModel(), **tuner_arguments)

    assert "overwrite=True" in str(raised.value)


def test_changed_oracle_type_raises(tmp_path: Path) -> None:
    class OtherOracle(tuner_core.RandomSearchOracle):
        pass

    _search(_tuner(tmp_path, CountingHyperModel()))

    oracle = OtherOracle(objective="val_loss", max_trials=2, seed=7)
    pattern = "oracle was RandomSearchOracle, now OtherOracle"
    with pytest.raises(ValueError, match=pattern):
        tuner_core.Tuner(
            CountingHyperModel(), oracle, directory=tmp_path, project_name="resumed"
        )


def test_overwrite_starts_afresh(tmp_path: Path) -> None:
    _search(_tuner(tmp_path, CountingHyperModel()))

    tuner = _tuner(tmp_path, CountingHyperModel(max_units=64), overwrite=True, seed=8)

    assert tuner.oracle.trials == {}
