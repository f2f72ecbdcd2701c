"""Resuming a search saved under a project name: after a kill, with new settings."""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from pipeline_runs import experiment_runs, split_runs, tracking_at
from pipeline_specs import write_tiny_spec
from prefect.settings import get_current_settings

from flows.tuning import tune_flow
from tasks.project import PROJECTS_FOLDER
from tasks.spec import SpecError
from tuner_core import SearchSpaceChangedError

pytestmark = pytest.mark.usefixtures("prefect_backend")

REPOSITORY = Path(__file__).resolve().parents[2]
TESTS = REPOSITORY / "tests"

WIDER_UNITS = """
[[hyperparameters]]
name = "units"
type = "Int"
min_value = 8
max_value = 32
step = 8
"""


def run_cli(
    spec_path: Path,
    tracking_uri: str,
    fit_log: Path,
    kill_at_fit: int,
    command_name: str = "tune",
) -> subprocess.CompletedProcess[str]:
    """Run `tuneflow tune`, or another command, in a new process.

    The process uses the test's Prefect server.
    """
    env = dict(
        os.environ,
        PYTHONPATH=f"{REPOSITORY}{os.pathsep}{TESTS}",
        PREFECT_API_URL=str(get_current_settings().api.url),
        PREFECT_HOME=str(spec_path.parent / "prefect-home"),
        TUNEFLOW_TEST_FIT_LOG=str(fit_log),
        TUNEFLOW_TEST_KILL_AT_FIT=str(kill_at_fit),
    )
    command = [sys.executable, "-m", "flows.cli", command_name, str(spec_path)]
    return subprocess.run(
        [*command, "--tracking-uri", tracking_uri],
        env=env,
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=300,
    )


def saved_trials(folder: Path) -> list[dict[str, object]]:
    state = json.loads((folder / "oracle.json").read_text())
    return sorted(state["trials"], key=lambda trial: trial["number"])


def test_killed_search_resumes(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    fit_log = tmp_path / "fits.jsonl"
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment="killed",
        max_trials=8,
        epochs=1,
        hypermodel="hypermodels:LoggedFitModel",
        extra='project_name = "killed-search"',
    )
    project = tmp_path / PROJECTS_FOLDER / "killed-search"

    killed = run_cli(spec_path, tracking_uri, fit_log, kill_at_fit=4)

    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    first_fits = fit_log.read_text().splitlines()
    assert len(first_fits) == 4
    statuses = [trial["status"] for trial in saved_trials(project)]
    assert statuses == ["COMPLETED"] * 3 + ["RUNNING"]
    client = MlflowClient(tracking_uri)
    runs = experiment_runs(client, "killed")
    running = {r.info.run_name for r in runs if r.info.status == "RUNNING"}
    assert "trial-3" in running

    resumed = run_cli(spec_path, tracking_uri, fit_log, kill_at_fit=0)

    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resuming a saved search: 3 trial(s) already finished." in resumed.stdout
    assert "Best trial:" in resumed.stdout
    fits = fit_log.read_text().splitlines()
    assert fits[:4] == first_fits
    assert fits[4] == first_fits[3], "the interrupted trial runs first"
    assert len(fits) == 9
    assert sorted(collections.Counter(fits).values()) == [1] * 7 + [2]
    assert [trial["status"] for trial in saved_trials(project)] == ["COMPLETED"] * 8
    search = json.loads((project / "search.json").read_text())
    assert sorted(search["trials"]) == [f"{n:02d}" for n in range(8)]

    runs = experiment_runs(client, "killed")
    assert [r for r in runs if r.info.status == "RUNNING"] == []
    parents, children = split_runs(runs)
    by_status = {r.info.status: r for r in parents}
    assert sorted(by_status) == ["FINISHED", "KILLED"]
    old_search, new_search = by_status["KILLED"], by_status["FINISHED"]
    assert new_search.data.tags["tuneflow.resumed_from"] == old_search.info.run_id
    assert search["search_run_id"] == new_search.info.run_id
    killed_children = [c for c in children if c.info.status == "KILLED"]
    assert [c.info.run_name for c in killed_children] == ["trial-3"]
    assert "Interrupted" in killed_children[0].data.tags["tuneflow.error"]
    finished = sorted(c.info.run_name for c in children if c.info.status == "FINISHED")
    assert finished == [f"trial-{n}" for n in range(8)]


def test_resume_checks_space_and_adds_trials(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    def write_spec(max_trials: int, extra: str = "") -> Path:
        return write_tiny_spec(
            tmp_path,
            digits_npz,
            experiment="resume",
            max_trials=max_trials,
            epochs=1,
            extra='project_name = "growing"\n' + extra,
        )

    first = tune_flow(str(write_spec(max_trials=2)))

    with pytest.raises(
        SpecError,
        match=r"(?s)project_name: The search space differs from the one saved in "
        r".*growing.*units: was Int.*now Int.*overwrite = true.*new project_name",
    ) as caught:
        tune_flow(str(write_spec(max_trials=2, extra=WIDER_UNITS)))
    assert isinstance(caught.value.__cause__, SearchSpaceChangedError)

    client = MlflowClient(tracking_uri)
    parents, children = split_runs(experiment_runs(client, "resume"))
    assert len(parents) == 1
    assert len(children) == 2

    grown = tune_flow(str(write_spec(max_trials=3)))

    assert [t["number"] for t in grown.trials] == [0, 1, 2]
    assert grown.trials[:2] == first.trials
    parents, children = split_runs(experiment_runs(client, "resume"))
    assert len(children) == 3
    assert {p.info.status for p in parents} == {"FINISHED"}
    resumed = client.get_run(grown.parent_run_id)
    assert resumed.data.tags["tuneflow.resumed_from"] == first.parent_run_id

    fresh = tune_flow(str(write_spec(max_trials=1, extra="overwrite = true")))

    assert [t["number"] for t in fresh.trials] == [0]
    assert fresh.trials[0]["run_id"] not in {t["run_id"] for t in grown.trials}
    assert "tuneflow.resumed_from" not in client.get_run(fresh.parent_run_id).data.tags


def test_resume_with_other_seed_is_spec_error(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment="reseeded",
        max_trials=1,
        epochs=1,
        extra='project_name = "reseeded"\n',
    )
    fit_log = tmp_path / "fits.jsonl"
    tune_flow(str(spec_path), tracking_uri=tracking_uri)
    same = run_cli(spec_path, tracking_uri, fit_log, 99, command_name="validate")
    text = spec_path.read_text(encoding="utf-8")
    spec_path.write_text(text.replace("seed = 3", "seed = 4"), encoding="utf-8")

    checked = run_cli(spec_path, tracking_uri, fit_log, 99, command_name="validate")
    outcome = run_cli(spec_path, tracking_uri, fit_log, kill_at_fit=99)

    assert same.returncode == 0, same.stderr[-3000:]
    assert "Saved search: 1 finished trial(s) under project_name" in same.stdout
    for finished in (checked, outcome):
        console = finished.stdout + finished.stderr
        assert finished.returncode == 2, console[-3000:]
        assert console.count("ran with other settings: seed was 3, now 4") == 1
        assert "project_name: The search saved in" in console
        assert "Traceback" not in console



def test_unwritable_directory_spec_error(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder", encoding="utf-8")
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment="unwritable",
        max_trials=1,
        epochs=1,
        extra=f'project_name = "blocked"\ndirectory = "{blocker / "projects"}"\n',
    )
    fit_log = tmp_path / "fits.jsonl"

    checked = run_cli(spec_path, tracking_uri, fit_log, 99, command_name="validate")
    outcome = run_cli(spec_path, tracking_uri, fit_log, kill_at_fit=99)

    for finished in (checked, outcome):
        console = finished.stdout + finished.stderr
        assert finished.returncode == 2, console[-3000:]
        assert "directory: cannot create or write the project folder" in console
        assert "Set directory to a folder this user can write" in console
        assert "Traceback" not in console
    assert not fit_log.exists()
    assert list(tmp_path.glob(".probe-*")) == []


def test_resume_lists_all_changes(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    spec_path = write_tiny_spec(
        tmp_path,
        digits_npz,
        experiment="changed",
        max_trials=1,
        epochs=1,
        extra='project_name = "changed"\n',
    )
    fit_log = tmp_path / "fits.jsonl"
    tune_flow(str(spec_path), tracking_uri=tracking_uri)
    text = spec_path.read_text(encoding="utf-8").replace("seed = 3", "seed = 4")
    text += '\n[[hyperparameters]]\nname = "units"\ntype = "Fixed"\nvalue = 8\n'
    spec_path.write_text(text, encoding="utf-8")

    checked = run_cli(spec_path, tracking_uri, fit_log, 99, command_name="validate")

    console = checked.stdout + checked.stderr
    assert checked.returncode == 2, console[-3000:]
    assert "ran with other settings: seed was 3, now 4." in console
    assert "The search space differs too:" in console
    assert "units" in console.split("The search space differs too:")[1]
    assert "Traceback" not in console


# A finished search that the tests below copy and rerun with changed settings.
SCORED_PROJECT = "scored"
SEARCH = "search.json"


@pytest.fixture(scope="module")
def scored_search(
    prefect_backend: None,
    tmp_path_factory: pytest.TempPathFactory,
    digits_npz: Path,
    empty_mlflow_database: Path,
) -> Path:
    """Run a 2-trial search of 2 epochs with a project, and return its folder.

    The folder contains the spec `scored.toml`, the MLflow store `mlflow.db`
    and the project folder next to it.
    """
    import mlflow

    folder = tmp_path_factory.mktemp("scored-search")
    shutil.copyfile(empty_mlflow_database, folder / "mlflow.db")
    spec_path = write_tiny_spec(
        folder,
        digits_npz,
        experiment="scored",
        max_trials=2,
        epochs=2,
        extra=f'project_name = "{SCORED_PROJECT}"\n',
    )
    previous = mlflow.get_tracking_uri()
    try:
        tune_flow(str(spec_path), tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    finally:
        mlflow.set_tracking_uri(previous)
    return folder


@pytest.fixture
def scored_copy(
    scored_search: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, str]]:
    """Copy the finished search for one test, and return its spec and tracking URI."""
    folder = tmp_path / "scored"
    shutil.copytree(scored_search, folder)
    with tracking_at(f"sqlite:///{folder / 'mlflow.db'}", monkeypatch) as uri:
        yield folder / "scored.toml", uri


def edit_spec(spec_path: Path, *edits: tuple[str, str]) -> None:
    """Replace, in the spec file, each `old` text of `edits` with its `new` text."""
    text = spec_path.read_text(encoding="utf-8")
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    spec_path.write_text(text, encoding="utf-8")


SPLIT_AND_EPOCHS = (
    ("[data]\n", "[data]\nvalidation_split = 0.5\n"),
    ("epochs = 2", "epochs = 1"),
)
COMPILE_TABLE = (
    "[mlflow]",
    '[compile]\noptimizer = "sgd"\nloss = "sparse_categorical_crossentropy"\n\n'
    "[mlflow]",
)


@pytest.mark.parametrize(
    ("edits", "changes"),
    [
        pytest.param(
            SPLIT_AND_EPOCHS,
            "[data] validation_split was 0.2, now 0.5; [fit] epochs was 2, now 1",
            id="split-and-epochs",
        ),
        pytest.param(
            (("batch_size = 64", "batch_size = 16"),),
            "[fit] batch_size was 64, now 16",
            id="batch-size",
        ),
        pytest.param(
            (("seed = 3", "seed = 3\nexecutions_per_trial = 2"),),
            "executions_per_trial was 1, now 2",
            id="executions",
        ),
        pytest.param(
            (COMPILE_TABLE,),
            "[compile] optimizer was not set, now 'sgd'; [compile] loss was not "
            "set, now 'sparse_categorical_crossentropy'",
            id="compile",
        ),
    ],
)
def test_resume_rejects_changed_scoring(
    scored_copy: tuple[Path, str], edits: tuple[tuple[str, str], ...], changes: str
) -> None:
    spec_path, uri = scored_copy
    project = spec_path.parent / PROJECTS_FOLDER / SCORED_PROJECT
    saved = {name: (project / name).read_bytes() for name in ("oracle.json", SEARCH)}
    edit_spec(spec_path, *edits)

    with pytest.raises(SpecError) as caught:
        tune_flow(str(spec_path), tracking_uri=uri)

    message = str(caught.value)
    assert "project_name: The search saved in" in message
    assert f"ran with other settings: {changes}. Restore those settings" in message
    assert {name: (project / name).read_bytes() for name in saved} == saved
    parents, children = split_runs(experiment_runs(MlflowClient(uri), "scored"))
    assert len(parents) == 1
    assert len(children) == 2


def test_cli_rejects_changed_split(
    scored_copy: tuple[Path, str],
) -> None:
    spec_path, uri = scored_copy
    edit_spec(spec_path, *SPLIT_AND_EPOCHS)
    fit_log = spec_path.parent / "fits.jsonl"

    checked = run_cli(spec_path, uri, fit_log, 99, command_name="validate")
    outcome = run_cli(spec_path, uri, fit_log, kill_at_fit=99)

    for finished in (checked, outcome):
        console = finished.stdout + finished.stderr
        assert finished.returncode == 2, console[-3000:]
        assert console.count(
            "ran with other settings: [data] validation_split was 0.2, now 0.5; "
            "[fit] epochs was 2, now 1."
        ) == 1, console[-3000:]
        assert "Traceback" not in console
    assert not fit_log.exists()


@pytest.mark.parametrize("old_save", [False, True], ids=["saved-settings", "old-save"])
def test_resume_with_more_trials(scored_copy: tuple[Path, str], old_save: bool) -> None:
    """Resume with a larger max_trials, also from a search saved without settings."""
    spec_path, uri = scored_copy
    search_path = spec_path.parent / PROJECTS_FOLDER / SCORED_PROJECT / SEARCH
    search = json.loads(search_path.read_text())
    assert search["settings"] == {
        "data.validation_split": 0.2,
        "fit.epochs": 2,
        "fit.batch_size": 64,
        "executions_per_trial": 1,
        "compile.optimizer": None,
        "compile.loss": None,
    }
    edits = [("max_trials = 2", "max_trials = 3")]
    if old_save:
        del search["settings"]
        search_path.write_text(json.dumps(search))
        edits.append(("epochs = 2", "epochs = 1"))
    edit_spec(spec_path, *edits)

    grown = tune_flow(str(spec_path), tracking_uri=uri)

    assert [t["number"] for t in grown.trials] == [0, 1, 2]
    first_runs = {t["run_id"] for t in search["trials"].values()}
    assert {t["run_id"] for t in grown.trials[:2]} == first_runs
    client = MlflowClient(uri)
    assert "tuneflow.resumed_from" in client.get_run(grown.parent_run_id).data.tags
    saved = json.loads(search_path.read_text())
    assert saved["settings"]["fit.epochs"] == (1 if old_save else 2)


def test_hyperband_resume_ignores_epochs(
    tmp_path: Path, digits_npz: Path, tracking_uri: str
) -> None:
    def write_spec(epochs: int, max_trials: int) -> Path:
        return write_tiny_spec(
            tmp_path,
            digits_npz,
            experiment="hyperband-resume",
            max_trials=max_trials,
            epochs=epochs,
            extra='oracle = "hyperband"\nmax_epochs = 2\nfactor = 2\n'
            'project_name = "hyperband"\n',
        )

    first = tune_flow(str(write_spec(epochs=1, max_trials=1)))
    search_path = tmp_path / PROJECTS_FOLDER / "hyperband" / "search.json"
    assert "fit.epochs" not in json.loads(search_path.read_text())["settings"]

    resumed = tune_flow(str(write_spec(epochs=5, max_trials=2)))

    assert [t["number"] for t in resumed.trials] == [0, 1]
    assert resumed.trials[0] == first.trials[0]
