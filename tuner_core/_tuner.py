"""The `Tuner`: runs an oracle's trials in this process and keeps their models."""

from __future__ import annotations

import json
import logging
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tuner_core._compile import CompileOverrides, find_override_conflicts
from tuner_core._deadline import TrialDeadline, check_timeout_seconds
from tuner_core._errors import (
    FailedTrialError,
    ObjectiveNotFoundError,
    SearchSpaceChangedError,
    TrialTimeoutError,
)
from tuner_core._hp_types import HyperParameter
from tuner_core._hypermodel import resolve_hypermodel
from tuner_core._hyperparameters import HyperParameters
from tuner_core._search_space import (
    explore_search_space,
    search_space_differences,
    search_space_summary_text,
)
from tuner_core._training import (
    TrialOutcome,
    build_trial_model,
    optimizer_state,
    run_trial,
)
from tuner_core._trial import Trial, TrialStatus
from tuner_core.oracles import Oracle, RandomSearchOracle

logger = logging.getLogger(__name__)

ORACLE_FILE = "oracle.json"
TUNER_FILE = "tuner.json"
_IGNORED_ARGUMENTS = {"distribution_strategy", "logger", "max_model_size"}
WEIGHTS_FILE = "weights.npz"
OPTIMIZER_FILE = "optimizer.npz"
BUILD_CONFIG_FILE = "build_config.json"


class Tuner:
    """Runs a search in this process: trials one after another, models on disk.

    Args:
        hypermodel: A build function `build_model(hp)` or a `HyperModel`.
        oracle: The oracle that chooses each trial's values.
        executions_per_trial: Models trained per trial; the trial's score is the
            mean of their best-epoch objectives. Defaults to 1.
        optimizer, loss, metrics: Compile overrides applied to every trial's
            model in place of the hypermodel's own arguments.
        directory, project_name: Where trial records and weights are kept.
            Default to "." and "untitled_project".
        overwrite: Start afresh instead of resuming a saved search. Defaults to False.
        seed: Seeds each execution's training. On resume, None keeps the saved
            search's seed and any other value must equal it. Defaults to None.
        trial_timeout_seconds: The seconds each attempt at a trial may take,
            counted from its start. Training checks the limit after every
            batch, and a trial past it fails with `TrialTimeoutError`, without
            retries. Defaults to None, no limit.

    Resuming a saved search reruns the trial that was running when it stopped,
    then requests new trials from the oracle up to `max_trials`, which may
    differ from the saved value.
    A changed search space raises `SearchSpaceChangedError`. A changed oracle
    type, objective or explicit seed raises ValueError.
    """

    def __init__(
        self,
        hypermodel: Any = None,
        oracle: Oracle | None = None,
        *,
        executions_per_trial: int = 1,
        optimizer: Any = None,
        loss: Any = None,
        metrics: list[Any] | None = None,
        directory: str | Path | None = None,
        project_name: str | None = None,
        overwrite: bool = False,
        tuner_id: str | None = None,
        seed: int | None = None,
        trial_timeout_seconds: float | None = None,
        **unsupported: Any,
    ) -> None:
        unknown = sorted(set(unsupported) - _IGNORED_ARGUMENTS)
        if unknown:
            raise TypeError(
                f"Unknown tuner arguments: {unknown}. Check their spelling against "
                "the Tuner and oracle arguments."
            )
        for name in sorted(set(unsupported) & _IGNORED_ARGUMENTS):
            warnings.warn(
                f"Tuner argument {name}= is accepted for compatibility and has no "
                "effect here. Remove it to silence this warning.",
                UserWarning,
                stacklevel=3,
            )
        if oracle is None:
            raise ValueError("oracle is missing. Pass an Oracle, or use RandomSearch.")
        if not isinstance(executions_per_trial, int) or executions_per_trial < 1:
            raise ValueError(
                "executions_per_trial must be an integer >= 1, but got "
                f"executions_per_trial={executions_per_trial!r}."
            )
        self.hypermodel = resolve_hypermodel(hypermodel)
        self.oracle = oracle
        self.executions_per_trial = executions_per_trial
        self.trial_timeout_seconds = check_timeout_seconds(trial_timeout_seconds)
        self.overrides = CompileOverrides(optimizer=optimizer, loss=loss, metrics=metrics)
        self.overrides.optimizer_config()
        self.project_dir = Path(directory or ".") / (project_name or "untitled_project")
        self.tuner_id = tuner_id or "tuner0"
        self._conflicts_checked = False
        self._interrupted: list[Trial] = []
        self._learned_names: set[str] = set()

        explored = explore_search_space(
            self.hypermodel,
            oracle.hyperparameters,
            tune_new_entries=oracle.tune_new_entries,
            allow_new_entries=oracle.allow_new_entries,
        )
        space = explored.tuned
        # Declarations that keep their defaults (tune_new_entries=False), so
        # that get_best_hyperparameters() returns every value a build reads.
        self._untuned = explored.untuned
        if overwrite and self.project_dir.exists():
            shutil.rmtree(self.project_dir)
        saved = self.project_dir / ORACLE_FILE
        if saved.exists():
            self._resume(saved, space, seed_given=seed is not None or oracle.seed_given)
        else:
            oracle.set_space(space)
        self.seed = seed if seed is not None else self.oracle.seed

    # Resuming.

    def _resume(self, saved: Path, space: HyperParameters, *, seed_given: bool) -> None:
        state = json.loads(saved.read_text())
        self._check_saved_settings(state, seed_given=seed_given)
        tuner_state = self._read_tuner_state()
        self._learned_names = set(tuner_state.get("learned_hyperparameters", []))
        saved_space = HyperParameters.from_config(state["space"])
        differences = search_space_differences(
            saved_space, space, self._learned_names
        )
        if differences:
            listing = "\n".join(f"  {line}" for line in differences)
            raise SearchSpaceChangedError(
                f"The search space differs from the one saved in {self.project_dir}:\n"
                f"{listing}\nPass overwrite=True to start a new search there, or pass "
                "a new project_name to keep the saved one."
            )

        self.oracle.set_state(state)
        interrupted = self._unfinished_trials()
        logger.info(
            "Resuming the search in %s: %d finished trials, %d interrupted trials "
            "to run again, max_trials=%s, seed=%s",
            self.project_dir,
            len(self.oracle.trials) - len(interrupted),
            len(interrupted),
            self.oracle.max_trials,
            self.oracle.seed,
        )

    def _check_saved_settings(self, state: dict[str, Any], *, seed_given: bool) -> None:
        """Raise ValueError when the oracle settings contradict the saved search.

        `max_trials` is not checked: a new value applies to the resumed search.
        """
        problems = []
        oracle_name = type(self.oracle).__name__
        if state.get("oracle", oracle_name) != oracle_name:
            problems.append(f"oracle was {state['oracle']}, now {oracle_name}")
        objective = self.oracle.objective
        saved_objective = state.get("objective")
        current_objective = {"name": objective.name, "direction": objective.direction}
        if saved_objective is not None and saved_objective != current_objective:
            problems.append(f"objective was {saved_objective}, now {current_objective}")
        if seed_given and state.get("seed") != self.oracle.seed:
            problems.append(f"seed was {state.get('seed')}, now {self.oracle.seed}")
        if problems:
            raise ValueError(
                f"The search saved in {self.project_dir} ran with other oracle "
                f"settings: {'; '.join(problems)}. Pass the saved settings (or "
                "seed=None) to resume it, pass overwrite=True to start a new search "
                "there, or pass a new project_name."
            )

        saved_max_trials = state.get("max_trials")
        if saved_max_trials != self.oracle.max_trials:
            logger.info(
                "Resuming with max_trials=%s; the saved search had max_trials=%s",
                self.oracle.max_trials,
                saved_max_trials,
            )

    def _read_tuner_state(self) -> dict[str, Any]:
        path = self.project_dir / TUNER_FILE
        if not path.exists():
            return {}
        return json.loads(path.read_text())

    def _save(self) -> None:
        """Write the tuner state, then the oracle state, each atomically."""
        tuner_state = {"learned_hyperparameters": sorted(self._learned_names)}
        path = self.project_dir / TUNER_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(tuner_state, indent=1))
        temporary.replace(path)
        self.oracle.save(self.project_dir / ORACLE_FILE)

    # Describing the search.

    def search_space_summary(self, extended: bool = False) -> None:
        """Print the search space in KerasTuner's format."""
        print(search_space_summary_text(self.oracle.space))

    def results_summary(self, num_trials: int = 10) -> None:
        """Print the best trials, best first, in KerasTuner's format."""
        objective = self.oracle.objective
        lines = [
            "Results summary",
            f"Results in {self.project_dir}",
            f"Showing {num_trials} best trials",
            f'Objective(name="{objective.name}", direction="{objective.direction}")',
        ]
        for trial in self._ranked_trials()[:num_trials]:
            lines.append("")
            lines.append(f"Trial {trial.trial_id} summary")
            lines.append("Hyperparameters:")
            values = trial.values or trial.hyperparameters.values
            if not values:
                lines.append("default configuration")
            for name, value in values.items():
                lines.append(f"{name}: {value}")
            if trial.score is not None:
                lines.append(f"Score: {trial.score}")
            if trial.status != TrialStatus.COMPLETED and trial.message:
                lines.append(f"Status: {trial.status.value}: {trial.message}")
        print("\n".join(lines))

    def _ranked_trials(self) -> list[Trial]:
        """Return finished trials: finite scores best first, then NaN, then failed."""
        objective = self.oracle.objective
        trials = [t for t in self.oracle.trials.values() if t.status.is_finished()]
        return sorted(
            trials,
            key=lambda t: (
                objective.sort_key(t.score),
                t.status != TrialStatus.COMPLETED,
                t.number,
            ),
        )

    # Searching.

    def search(self, *fit_args: Any, **fit_kwargs: Any) -> None:
        """Run trials until the oracle stops; arguments go to `model.fit`."""
        self._warn_override_conflicts()
        self.project_dir.mkdir(parents=True, exist_ok=True)
        x, y, fit_kwargs = _split_fit_arguments(fit_args, fit_kwargs)
        self.on_search_begin(fit_kwargs)
        self._interrupted = self._unfinished_trials()
        failures: list[Trial] = []
        while True:
            trial = self._next_trial()
            if trial.status == TrialStatus.STOPPED:
                logger.info("Search finished: %s", trial.message)
                print(f"Search finished: {trial.message}.")
                break
            # Saving the RUNNING trial lets a resumed search run it again.
            self._save()
            self._run_with_retries(trial, x, y, fit_kwargs)
            self._save()
            if trial.status == TrialStatus.COMPLETED:
                failures = []
                continue
            failures.append(trial)
            if len(failures) >= self.oracle.max_consecutive_failed_trials:
                raise RuntimeError(_consecutive_failure_message(failures))

    def _unfinished_trials(self) -> list[Trial]:
        """Return trials that a killed or interrupted search left RUNNING."""
        trials = [t for t in self.oracle.trials.values() if not t.status.is_finished()]
        return sorted(trials, key=lambda t: t.number)

    def _next_trial(self) -> Trial:
        """Return an interrupted trial of the saved search, else the oracle's next."""
        max_trials = self.oracle.max_trials
        while self._interrupted:
            trial = self._interrupted.pop(0)
            if max_trials is not None and trial.number >= max_trials:
                logger.info(
                    "Dropping interrupted trial %s because max_trials=%d leaves no "
                    "room for it",
                    trial.trial_id,
                    max_trials,
                )
                del self.oracle.trials[trial.trial_id]
                continue
            logger.info(
                "Running trial %s again because the search stopped while it ran",
                trial.trial_id,
            )
            return trial
        return self.oracle.create_trial(self.tuner_id)

    def on_search_begin(self, fit_kwargs: dict[str, Any]) -> None:
        """Let a subclass adjust fit arguments before the first trial."""

    def trial_fit_kwargs(self, trial: Trial, fit_kwargs: dict[str, Any]) -> dict[str, Any]:
        """Return the fit arguments of one trial; subclasses set epoch budgets."""
        return fit_kwargs

    def _run_with_retries(
        self, trial: Trial, x: Any, y: Any, fit_kwargs: dict[str, Any]
    ) -> None:
        max_attempts = 1 + self.oracle.max_retries_per_trial
        started = time.perf_counter()
        for attempt in range(1, max_attempts + 1):
            trial.attempts = attempt
            deadline = None
            if self.trial_timeout_seconds is not None:
                deadline = TrialDeadline(self.trial_timeout_seconds)
            try:
                trial_kwargs = self.trial_fit_kwargs(trial, dict(fit_kwargs))
                self._execute(trial, x, y, trial_kwargs, deadline)
            except ObjectiveNotFoundError as error:
                self.oracle.end_trial(trial, TrialStatus.FAILED, message=str(error))
                self._save()
                raise
            except FailedTrialError as error:
                self.oracle.end_trial(trial, TrialStatus.FAILED, message=_error_text(error))
                logger.warning("Trial %s failed: %s", trial.trial_id, error)
                if isinstance(error, TrialTimeoutError):
                    print(f"Trial {trial.trial_id} timed out: {error}")
                return
            except Exception as error:  # noqa: BLE001 - any error fails the trial
                logger.warning(
                    "Trial %s attempt %d of %d failed: %s",
                    trial.trial_id,
                    attempt,
                    max_attempts,
                    error,
                )
                if attempt == max_attempts:
                    self.oracle.end_trial(trial, TrialStatus.FAILED, message=_error_text(error))
                    return
            else:
                seconds = time.perf_counter() - started
                print(
                    f"Trial {trial.trial_id} complete in {seconds:.1f}s: "
                    f"{self.oracle.objective.name}={trial.score} with {trial.values}"
                )
                return

    def _execute(
        self,
        trial: Trial,
        x: Any,
        y: Any,
        fit_kwargs: dict[str, Any],
        deadline: TrialDeadline | None = None,
    ) -> None:
        validation_data = fit_kwargs.pop("validation_data", None)
        outcomes: list[TrialOutcome] = []
        for execution in range(self.executions_per_trial):
            outcome = run_trial(
                self.hypermodel,
                self.oracle.space,
                trial.hyperparameters.values,
                objective=self.oracle.objective,
                x=x,
                y=y,
                validation_data=validation_data,
                overrides=self.overrides,
                fit_kwargs=fit_kwargs,
                seed=self.seed + trial.number * 1000 + execution,
                allow_new_entries=self.oracle.allow_new_entries,
                deadline=deadline,
            )
            outcomes.append(outcome)

        scores = [o.score for o in outcomes]
        best = min(outcomes, key=lambda o: self.oracle.objective.sort_key(o.score))
        trial_dir = self.project_dir / f"trial_{trial.trial_id}"
        trial_dir.mkdir(parents=True, exist_ok=True)
        np.savez(trial_dir / WEIGHTS_FILE, *best.model.get_weights())
        state = optimizer_state(best.model)
        if state is not None:
            np.savez(trial_dir / OPTIMIZER_FILE, *state)
        build_config = best.model.get_build_config()
        (trial_dir / BUILD_CONFIG_FILE).write_text(json.dumps(build_config))

        self._learn_new_entries(trial, best)
        trial.execution_scores = scores
        trial.optimizer = best.optimizer
        # The mean is NaN when any execution's score is NaN.
        self.oracle.end_trial(
            trial,
            TrialStatus.COMPLETED,
            score=float(np.mean(scores)),
            best_step=best.best_epoch,
            metrics=dict(best.history),
            values=best.hyperparameters,
        )

    def _learn_new_entries(self, trial: Trial, outcome: TrialOutcome) -> None:
        """Add hyperparameters first declared during a trial to the search space.

        They are typically declared in `HyperModel.fit`, which the search space
        exploration does not call, so the trial that finds them uses their
        defaults and later trials tune them. With `tune_new_entries=False` they
        keep their defaults and appear only in the trial values.
        """
        if not outcome.new_entries or not self.oracle.tune_new_entries:
            return
        names = sorted({entry.name for entry in outcome.new_entries})
        logger.info(
            "Trial %s declared hyperparameters %s that were not in the search space; "
            "later trials tune them",
            trial.trial_id,
            names,
        )
        self.oracle.space.merge(outcome.new_entries, overwrite=False)
        trial.hyperparameters.merge(outcome.new_entries, overwrite=False)
        used = {
            name: outcome.hyperparameters[name]
            for name in names
            if name in outcome.hyperparameters
        }
        trial.hyperparameters.set_values({**trial.hyperparameters.values, **used})
        self._learned_names.update(names)

    # Results.

    def get_best_hyperparameters(self, num_trials: int = 1) -> list[HyperParameters]:
        """Return the values of the best trials, untuned defaults included."""
        result = []
        for trial in self.oracle.get_best_trials(num_trials):
            hp = self.oracle.space.copy()
            hp.merge(self._untuned)
            hp.values = trial.values or trial.hyperparameters.values
            result.append(hp)
        return result

    def get_best_models(self, num_models: int = 1) -> list[Any]:
        """Return the best trials' models, compiled with the overrides, best first."""
        models = []
        for trial in self.oracle.get_best_trials(num_models):
            models.append(self.load_model(trial))
        return models

    def load_model(self, trial: Trial) -> Any:
        """Rebuild a trial's model and load its saved weights."""
        model, _ = build_trial_model(
            self.hypermodel, self.oracle.space, trial.hyperparameters.values, self.overrides
        )
        trial_dir = self.project_dir / f"trial_{trial.trial_id}"
        if not model.built:
            build_config = json.loads((trial_dir / BUILD_CONFIG_FILE).read_text())
            model.build_from_config(build_config)
        model.set_weights(load_arrays(trial_dir / WEIGHTS_FILE))
        return model

    def _warn_override_conflicts(self) -> None:
        if self._conflicts_checked:
            return
        self._conflicts_checked = True
        self.override_conflicts = find_override_conflicts(
            self.hypermodel, self.oracle.space, self.overrides
        )
        for name, keys in self.override_conflicts.items():
            warnings.warn(
                f"Hyperparameter {name!r} is tuned but has no effect on {keys}: the "
                f"compile override of {', '.join(keys)} replaces what it feeds. Remove "
                "it from the search space, or drop the override.",
                UserWarning,
                stacklevel=3,
            )

    @property
    def remaining_trials(self) -> int | None:
        if self.oracle.max_trials is None:
            return None
        return self.oracle.max_trials - len(self.oracle.trials)


class RandomSearch(Tuner):
    """A tuner whose oracle draws configurations at random."""

    def __init__(
        self,
        hypermodel: Any = None,
        objective: Any = None,
        max_trials: int = 10,
        seed: int | None = None,
        hyperparameters: HyperParameters | None = None,
        tune_new_entries: bool = True,
        allow_new_entries: bool = True,
        max_retries_per_trial: int = 0,
        max_consecutive_failed_trials: int = 3,
        **kwargs: Any,
    ) -> None:
        oracle = RandomSearchOracle(
            objective=objective,
            max_trials=max_trials,
            hyperparameters=hyperparameters,
            tune_new_entries=tune_new_entries,
            allow_new_entries=allow_new_entries,
            seed=seed,
            max_retries_per_trial=max_retries_per_trial,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        super().__init__(hypermodel, oracle, seed=seed, **kwargs)


def _split_fit_arguments(
    fit_args: tuple[Any, ...], fit_kwargs: dict[str, Any]
) -> tuple[Any, Any, dict[str, Any]]:
    fit_kwargs = dict(fit_kwargs)
    x = fit_args[0] if len(fit_args) > 0 else fit_kwargs.pop("x", None)
    y = fit_args[1] if len(fit_args) > 1 else fit_kwargs.pop("y", None)
    if len(fit_args) > 2:
        raise TypeError(
            "search() takes x and y as positional arguments; pass every other fit "
            "argument by keyword, e.g. epochs=3."
        )
    return x, y, fit_kwargs


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _consecutive_failure_message(failures: list[Trial]) -> str:
    lines = [
        f"The search stopped after {len(failures)} consecutive failed trials. "
        "Fix the error below, or raise max_consecutive_failed_trials. Completed "
        "trials stay available through get_best_models(). Failed trials:"
    ]
    for trial in failures:
        values = trial.values or trial.hyperparameters.values
        lines.append(f"  trial {trial.trial_id} with {values}: {trial.message}")
    return "\n".join(lines)


def load_arrays(path: Path) -> list[np.ndarray]:
    """Return the arrays that `np.savez(path, *arrays)` wrote, in their order."""
    with np.load(path) as saved:
        return [saved[f"arr_{i}"] for i in range(len(saved.files))]
