"""Tasks that run before any trial: load the data and build the search space."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from typing_extensions import TypedDict

import tuner_core
from tasks._spec_errors import SpecError
from tasks.data import DataError, DataRef, make_data_ref
from tasks.search_space import cached_search_space, compile_overrides_from_spec
from tasks.spec import TuningSpec, load_spec


class SearchSpaceInfo(TypedDict):
    """Tuned search space: its config, its summary and the entries overrides void.

    `overridden` maps a hyperparameter name to the `[compile]` keys that replace
    what it feeds.
    """

    config: dict[str, Any]
    summary: str
    overridden: dict[str, list[str]]


@dataclass(frozen=True)
class SpecReport:
    """A spec that passed every check, with its data reference and search space."""

    spec: TuningSpec
    data_ref: DataRef
    search_space: SearchSpaceInfo


@task(name="load-data", cache_policy=NONE)
def load_data(spec: TuningSpec, split_seed: int | None = None) -> DataRef:
    """Load the spec's data into this process's cache and return a reference to it.

    `split_seed` replaces the spec's seed for the validation split, so a
    resumed search validates on the samples it validated on before.
    """
    data_ref = load_data_ref(spec, split_seed)
    get_run_logger().info(
        "Loaded %d samples from %s (fingerprint %s), holding out %.0f%% for "
        "validation.",
        data_ref.num_samples,
        data_ref.path or data_ref.source,
        data_ref.fingerprint[:12],
        100 * data_ref.validation_split,
    )
    return data_ref


@task(name="prepare-search-space", cache_policy=NONE)
def prepare_search_space(spec: TuningSpec) -> SearchSpaceInfo:
    """Build the search space, warn about overridden entries, publish the summary."""
    run_logger = get_run_logger()
    info = describe_search_space(spec)
    if info["overridden"]:
        described = ", ".join(
            f"{name!r} ([compile] {' and '.join(keys)})"
            for name, keys in info["overridden"].items()
        )
        run_logger.warning(
            "Tuned hyperparameters that have no effect, because the spec's "
            "[compile] table replaces what they feed: %s. Remove them from the "
            "search, or drop the override.",
            described,
        )
    create_markdown_artifact(
        key=artifact_key("search-space", spec.mlflow.experiment),
        markdown=f"```\n{info['summary']}\n```",
        description=f"Search space of {spec.hypermodel}",
    )
    run_logger.info("%s", info["summary"])
    return info


def load_data_ref(spec: TuningSpec, split_seed: int | None = None) -> DataRef:
    """Return `make_data_ref` for the spec, reporting data problems as a SpecError."""
    try:
        return make_data_ref(spec.data, spec.seed if split_seed is None else split_seed)
    except DataError as error:
        raise SpecError([str(error)]) from error


def describe_search_space(spec: TuningSpec) -> SearchSpaceInfo:
    """Build the spec's search space and describe it.

    Raises:
        SpecError: the search space cannot be built (see `build_search_space`).
    """
    hypermodel, space = cached_search_space(spec)
    overrides = compile_overrides_from_spec(spec)
    overridden: dict[str, list[str]] = {}
    if overrides is not None:
        overridden = dict(
            tuner_core.find_override_conflicts(hypermodel, space, overrides)
        )
    return SearchSpaceInfo(
        config=space.get_config(),
        summary=tuner_core.search_space_summary_text(space),
        overridden=overridden,
    )


def validate_spec_file(path: str | Path) -> SpecReport:
    """Run every check a search runs before its first trial, and train nothing.

    Loads and validates the spec, loads the data and builds the search space.

    Raises:
        SpecError: a check failed. The message names the field, the value and
            the fix.
    """
    spec = load_spec(path)
    try:
        data_ref = load_data_ref(spec)
        search_space = describe_search_space(spec)
        check_default_model(spec, data_ref)
    except SpecError as error:
        raise SpecError(error.problems, str(path)) from error
    return SpecReport(spec=spec, data_ref=data_ref, search_space=search_space)


# Escape sequences that Keras puts in its error messages to color a terminal.
_TERMINAL_COLORS = re.compile(r"\x1b\[[0-9;]*m")


def check_default_model(spec: TuningSpec, data_ref: DataRef) -> None:
    """Raise SpecError when the default model rejects the data or lacks the objective.

    Builds the model with every hyperparameter at its default and applies the
    compile overrides. Then calls the model on two training samples and
    evaluates it on them. This takes a fraction of a second and spares a search
    whose every trial would fail the same way. The evaluation gives the metric
    names the trials report, each also with a 'val_' prefix. A HyperModel with
    its own `fit` may reshape the data or report other metrics, so it is not
    checked.
    """
    import keras

    from tasks.data import load_dataset

    hypermodel, space = cached_search_space(spec)
    if type(hypermodel).fit is not tuner_core.HyperModel.fit:
        return
    dataset = load_dataset(data_ref)
    samples = dataset.x_train[:2]
    try:
        model = hypermodel.build(space.copy())
        model(samples)
    except Exception as error:
        raise SpecError(
            [
                f"data: the model, built with the default hyperparameters, rejects "
                f"samples of shape {tuple(samples.shape[1:])} from the data "
                f"({_first_line(error)}). Received: sample_shape="
                f"{spec.data.sample_shape}. Set [data] sample_shape to the input "
                "shape the model expects, or change the model's input."
            ]
        ) from error
    else:
        reported = _reported_metrics(spec, model, samples, dataset.y_train[:2])
    finally:
        keras.backend.clear_session(free_memory=False)
    name = spec.objective.name
    if name not in reported:
        raise SpecError(
            [
                f"objective: the model does not report the metric {name!r}. "
                f"Received: objective={name!r}. The model, built with the default "
                f"hyperparameters, reports {reported}. Set the objective to one of "
                "them, or add the metric to the build function's compile(metrics=...) "
                "or to [compile] metrics."
            ]
        )


def _reported_metrics(
    spec: TuningSpec, model: Any, samples: Any, labels: Any
) -> list[str]:
    """Evaluate the compiled `model` on the samples and return its metric names.

    The names with a 'val_' prefix come first.
    """
    try:
        model = tuner_core.apply_compile_overrides(
            model, compile_overrides_from_spec(spec)
        )
        logs = model.evaluate(samples, labels, verbose=0, return_dict=True)
    except Exception as error:
        raise SpecError(
            [
                f"hypermodel: the model, built with the default hyperparameters, "
                f"failed to evaluate two samples of the data ({_first_line(error)}). "
                f"Received: hypermodel={spec.hypermodel!r}. Check that the build "
                "function compiles the model with a loss that fits the labels."
            ]
        ) from error
    return [*(f"val_{name}" for name in logs), *logs]


def _first_line(error: Exception) -> str:
    """Return the error's type and the first line of its message, without colors."""
    reason = _TERMINAL_COLORS.sub("", str(error)).strip()
    first_line = reason.splitlines()[0] if reason else ""
    return f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__


def artifact_key(prefix: str, name: str) -> str:
    """Return a Prefect artifact key: lowercase letters, digits and dashes."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"{prefix}-{slug}" if slug else prefix


def check_saved_search(report: SpecReport, tracking_uri: str) -> int:
    """Check that the spec can resume the search saved under its project_name.

    Runs the comparison that a resumed search runs before its first trial,
    on a throwaway oracle, and changes nothing on disk. Returns how many
    trials the saved search finished, 0 when there is none to resume.

    Raises:
        SpecError: the saved search ran with other settings or another
            search space.
    """
    from tasks.oracles import build_oracle
    from tasks.project import (
        SearchProject,
        check_project_folder,
        project_folder,
        resume_saved_search,
    )
    from tasks.search_space import objective_from_spec

    spec = report.spec
    folder = project_folder(spec, tracking_uri)
    if folder is None:
        return 0
    check_project_folder(folder, spec)
    if spec.overwrite:
        return 0
    saved = SearchProject(folder).load()
    if saved is None:
        return 0

    space = tuner_core.HyperParameters.from_config(report.search_space["config"])
    oracle = build_oracle(spec, objective_from_spec(spec), space)
    data_ref = load_data_ref(spec, split_seed=saved.split_seed)
    return len(resume_saved_search(oracle, saved, spec, data_ref, space))

