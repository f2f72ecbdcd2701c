"""Saving a search under its project name, and resuming it after a stop.

A spec with a `project_name` keeps its search in a project folder, by default
`tuneflow-projects/<project_name>` next to the MLflow SQLite database (in the
working directory for other stores), or under the spec's `directory`. The
folder contains `oracle.json`, the oracle state, and `search.json`: the MLflow
search run, the data fingerprint and split seed, the settings that decide how
a trial is scored, and the result of every finished trial. The flow writes
both files as each trial starts and ends. A rerun of the same spec then runs
no finished trial again, runs each trial that was running once more, and
continues up to `max_trials`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow import MlflowClient
from mlflow.entities import RunTag
from mlflow.exceptions import MlflowException

import tuner_core
from tasks._spec_errors import SpecError
from tasks.results import TrialResult
from tasks.tracking import (
    ERROR_TAG,
    STATUS_TAG,
    fail_pending_models,
    running_trial_runs,
    sqlite_database_path,
)
from tuner_core import HyperParameters, Oracle, SearchSpaceChangedError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tasks.data import DataRef
    from tasks.spec import TuningSpec

logger = logging.getLogger(__name__)

PROJECTS_FOLDER = "tuneflow-projects"
ORACLE_FILE = "oracle.json"
SEARCH_FILE = "search.json"
INTERRUPTED_STATUS = "INTERRUPTED"
# The spec settings that decide how a trial's score is measured, by their key
# in search.json, with the name that a resume error gives them. The oracle,
# objective, seed and Hyperband options are in the oracle state instead, and
# the data source, path, keys, label column and sample shape are covered by
# the data fingerprint, which hashes the loaded arrays. [compile] metrics are
# left out, because they do not change training and the objective, compared
# already, names the metric that scores a trial.
SCORING_SETTINGS = {
    "data.validation_split": "[data] validation_split",
    "fit.epochs": "[fit] epochs",
    "fit.batch_size": "[fit] batch_size",
    "executions_per_trial": "executions_per_trial",
    "compile.optimizer": "[compile] optimizer",
    "compile.loss": "[compile] loss",
}


class ResumeError(ValueError):
    """Error for a saved search that the spec's settings cannot resume."""


def project_folder(spec: TuningSpec, tracking_uri: str) -> Path | None:
    """Return the folder that keeps the spec's search, or None without a project."""
    if spec.project_name is None:
        return None
    directory = spec.directory
    if directory is None:
        database = sqlite_database_path(tracking_uri)
        base = database.parent if database is not None else Path.cwd()
        directory = base / PROJECTS_FOLDER
    return directory / spec.project_name


def check_project_folder(folder: Path, spec: TuningSpec) -> None:
    """Raise SpecError unless the project folder exists or can be created.

    Creates and removes a probe folder in the nearest folder that exists,
    which leaves nothing behind.
    """
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if existing == folder and not folder.is_dir():
            raise NotADirectoryError(f"{folder} is a file")
        os.rmdir(tempfile.mkdtemp(prefix=".probe-", dir=existing))
    except OSError as error:
        setting = "directory" if spec.directory is not None else "project_name"
        directory = None if spec.directory is None else str(spec.directory)
        raise SpecError(
            [
                f"{setting}: cannot create or write the project folder {folder} "
                f"({type(error).__name__}: {error}). Received: directory="
                f"{directory!r}, project_name={spec.project_name!r}. Set directory to a folder this user can "
                "write, or leave it out to keep projects next to the MLflow store."
            ]
        ) from error


@dataclass
class SavedSearch:
    """A search read back from its project folder.

    `trials` maps trial ids to the results of the trials that finished.
    """

    folder: Path
    oracle_state: dict[str, Any]
    search_run_id: str | None
    data_fingerprint: str | None
    split_seed: int | None
    trials: dict[str, TrialResult]
    # Values from `scoring_settings`. A search saved by an older version lacks
    # some or all of them, so their values are unknown.
    settings: dict[str, Any] = field(default_factory=dict)


class SearchProject:
    """The project folder of one search, read and written as JSON files.

    NOTE: nothing locks the folder, so two flow runs of one project at the
    same time overwrite each other's state.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def load(self) -> SavedSearch | None:
        """Return the saved search, or None when the folder contains none."""
        oracle_path = self.folder / ORACLE_FILE
        if not oracle_path.is_file():
            return None
        search_path = self.folder / SEARCH_FILE
        search = json.loads(search_path.read_text()) if search_path.is_file() else {}
        return SavedSearch(
            folder=self.folder,
            oracle_state=json.loads(oracle_path.read_text()),
            search_run_id=search.get("search_run_id"),
            data_fingerprint=search.get("data_fingerprint"),
            split_seed=search.get("split_seed"),
            trials=dict(search.get("trials", {})),
            settings=dict(search.get("settings", {})),
        )

    def delete(self) -> None:
        """Remove the saved search, as `overwrite = true` requests."""
        for name in (ORACLE_FILE, SEARCH_FILE):
            (self.folder / name).unlink(missing_ok=True)

    def save(
        self,
        oracle: Oracle,
        trials: Mapping[str, TrialResult],
        search_run_id: str,
        data_ref: DataRef,
        spec: TuningSpec,
    ) -> None:
        """Write the search, then the oracle state, each file replaced atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        search = {
            "search_run_id": search_run_id,
            "data_fingerprint": data_ref.fingerprint,
            "split_seed": data_ref.seed,
            "settings": scoring_settings(spec, data_ref),
            "trials": dict(trials),
        }
        _write_json(self.folder / SEARCH_FILE, search)
        oracle.save(self.folder / ORACLE_FILE)


def scoring_settings(spec: TuningSpec, data_ref: DataRef) -> dict[str, Any]:
    """Return the settings that decide how the spec's trials are scored.

    The keys are those of SCORING_SETTINGS. The values pass through JSON, so
    they compare equal to the values read back from search.json. Hyperband
    sets each trial's epochs itself, so its searches leave out `fit.epochs`.
    """
    optimizer: Any = spec.compile.optimizer
    if optimizer is not None and not isinstance(optimizer, str):
        optimizer = optimizer.model_dump()
    settings = {
        "data.validation_split": data_ref.validation_split,
        "fit.epochs": spec.fit.epochs,
        "fit.batch_size": spec.fit.batch_size,
        "executions_per_trial": spec.executions_per_trial,
        "compile.optimizer": optimizer,
        "compile.loss": spec.compile.loss,
    }
    if spec.oracle == "hyperband":
        del settings["fit.epochs"]
    return json.loads(json.dumps(settings, default=str))


def _write_json(path: Path, data: Any) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data, indent=1, default=str))
    temporary.replace(path)


def open_project(
    spec: TuningSpec, tracking_uri: str
) -> tuple[SearchProject | None, SavedSearch | None]:
    """Return the spec's project and its saved search, if any.

    With `overwrite = true`, the saved search is deleted first. Its runs still
    RUNNING in MLflow are ended as KILLED.
    """
    folder = project_folder(spec, tracking_uri)
    if folder is None:
        return None, None
    check_project_folder(folder, spec)

    project = SearchProject(folder)
    saved = project.load()
    if saved is not None and spec.overwrite:
        logger.info("Deleting the saved search in %s (overwrite = true).", folder)
        if saved.search_run_id is not None:
            end_interrupted_runs(MlflowClient(tracking_uri), saved.search_run_id, None)
        project.delete()
        saved = None
    return project, saved


def resume_oracle(
    oracle: Oracle,
    saved: SavedSearch,
    spec: TuningSpec,
    data_ref: DataRef,
    space: HyperParameters,
) -> dict[str, TrialResult]:
    """Load a saved search into `oracle` and return its finished trials by id.

    The spec's `max_trials`, retry limits, concurrency and Bayesian or
    `hyperband_iterations` options apply to the resumed search.

    Raises:
        ResumeError: the oracle, objective, seed, data, Hyperband epochs or a
            setting that decides how trials are scored (SCORING_SETTINGS)
            differ. A setting that the saved search lacks is not compared.
        SearchSpaceChangedError: the search space differs from the saved one.
    """
    state = saved.oracle_state
    problems = _setting_differences(oracle, state, spec, data_ref, saved)
    saved_space = HyperParameters.from_config(state["space"])
    differences = tuner_core.search_space_differences(saved_space, space)
    listing = "\n".join(f"  {line}" for line in differences)
    if problems:
        space_changes = (
            f" The search space differs too:\n{listing}\n" if differences else " "
        )
        raise ResumeError(
            f"The search saved in {saved.folder} ran with other settings: "
            f"{'; '.join(problems)}.{space_changes}Restore those settings to resume "
            "it, set overwrite = true in the spec to start a new search there, or "
            "set a new project_name."
        )
    if differences:
        raise SearchSpaceChangedError(
            f"The search space differs from the one saved in {saved.folder}:\n"
            f"{listing}\nSet overwrite = true in the spec to start a new search "
            "there, or set a new project_name to keep the saved one."
        )

    oracle.set_state(state)
    return {
        trial_id: result
        for trial_id, result in saved.trials.items()
        if trial_id in oracle.trials and oracle.trials[trial_id].status.is_finished()
    }


def resume_saved_search(
    oracle: Oracle,
    saved: SavedSearch,
    spec: TuningSpec,
    data_ref: DataRef,
    space: HyperParameters,
) -> dict[str, TrialResult]:
    """Return `resume_oracle(...)`, reporting a search it cannot resume as a spec error.

    Raises:
        SpecError: the saved search ran with other settings or another
            search space. The message names project_name.
    """
    try:
        return resume_oracle(oracle, saved, spec, data_ref, space)
    except (ResumeError, SearchSpaceChangedError) as error:
        raise SpecError([f"project_name: {error}"]) from error


def _setting_differences(
    oracle: Oracle,
    state: dict[str, Any],
    spec: TuningSpec,
    data_ref: DataRef,
    saved: SavedSearch,
) -> list[str]:
    problems = []
    oracle_name = type(oracle).__name__
    if state.get("oracle") != oracle_name:
        problems.append(f"oracle was {state.get('oracle')}, now {oracle_name}")
    objective = {"name": oracle.objective.name, "direction": oracle.objective.direction}
    if state.get("objective") != objective:
        problems.append(f"objective was {state.get('objective')}, now {objective}")
    if spec.seed is not None and state.get("seed") != spec.seed:
        problems.append(f"seed was {state.get('seed')}, now {spec.seed}")
    for name in ("max_epochs", "factor"):
        if name in state and state[name] != getattr(oracle, name, None):
            problems.append(f"{name} was {state[name]}, now {getattr(oracle, name)}")
    if saved.data_fingerprint not in (None, data_ref.fingerprint):
        problems.append(
            f"the data fingerprint was {saved.data_fingerprint[:12]}, now "
            f"{data_ref.fingerprint[:12]}"
        )
    current = scoring_settings(spec, data_ref)
    for key, name in SCORING_SETTINGS.items():
        if key in saved.settings and key in current:
            was, now = saved.settings[key], current[key]
            if was != now:
                problems.append(
                    f"{name} was {_format_setting(was)}, now {_format_setting(now)}"
                )
    return problems


def _format_setting(value: Any) -> str:
    """Format a setting's value for a resume error: text quoted, None as 'not set'."""
    if value is None:
        return "not set"
    return repr(value) if isinstance(value, str) else str(value)


def unfinished_trials(oracle: Oracle) -> list[tuner_core.Trial]:
    """Return the trials a stopped search left running, in trial order."""
    trials = [t for t in oracle.trials.values() if not t.status.is_finished()]
    return sorted(trials, key=lambda trial: trial.number)


def end_interrupted_runs(
    client: MlflowClient, search_run_id: str, resumed_by: str | None
) -> list[str]:
    """End a stopped search run and its trial runs still RUNNING as KILLED.

    Returns the ids of the runs ended. `resumed_by` is the id of the search
    run that resumes the search, or None when the search starts afresh.
    """
    try:
        parent = client.get_run(search_run_id)
    except MlflowException as error:
        logger.warning("Cannot read the saved search run %s: %s", search_run_id, error)
        return []

    runs = running_trial_runs(client, parent)
    if parent.info.status == "RUNNING":
        runs.append(search_run_id)

    then = "started afresh" if resumed_by is None else f"resumed by run {resumed_by}"
    message = (
        "Interrupted: the process stopped while this run was running. The search "
        f"was {then}."
    )
    for run_id in runs:
        client.log_batch(
            run_id,
            tags=[RunTag(STATUS_TAG, INTERRUPTED_STATUS), RunTag(ERROR_TAG, message)],
        )
        fail_pending_models(client, run_id)
        client.set_terminated(run_id, status="KILLED")
        logger.warning("Marked run %s as KILLED: %s", run_id, message)
    return runs
