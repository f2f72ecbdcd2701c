"""Compare the best validation accuracy that tuners reach on an equal epoch budget.

Seven tuners search one space on scikit-learn's digits, each for the same
total number of training epochs, once per seed:

- tuner_core's RandomSearch, BayesianOptimization and Hyperband (this
  project's tuning library, called directly, without Prefect or MLflow);
- KerasTuner 1.4.8's RandomSearch, BayesianOptimization and Hyperband;
- Optuna's TPE sampler with a HyperbandPruner, fed val_accuracy after every
  epoch through `trial.report` and `trial.should_prune`.

Every tuner uses the build function below, the digits split of
`examples/digits.toml` (seed 7, 20% held out for validation) and batch size
32. RandomSearch and BayesianOptimization train every trial for
`--trial-epochs` epochs. Hyperband and the Optuna pruner give a trial at most
`--max-epochs` epochs with reduction factor 3. The oracles keep their default
settings otherwise, so BayesianOptimization starts with 3 random trials per
hyperparameter (12) on both libraries.

A Keras callback (`benchmarks/_epoch_budget.py`) counts every epoch trained,
including the epochs of a Hyperband trial that continues an earlier one and
of a trial that the pruner stops. After the epoch that spends the budget, it
stops the trial that is training: that trial keeps the epochs it trained, and
no further trial starts. A search's score is the best val_accuracy of any
epoch it trained. A tuner that stops by itself before the budget is spent
keeps its last best value for the remaining epochs of the plot.

The script prints the median, minimum and maximum score of each tuner over
the seeds, and the verdicts against the targets. In --output-dir, it saves
the median best score against epochs spent as efficiency.png, and writes
every seed's results and curve to efficiency.json. Each tuner runs its seeds in
a fresh process, so that TensorFlow's memory growth over hundreds of models
stays bounded and no tuner inherits another's state. That process fits one
model before its first search, so TensorFlow's start-up falls on no search.
By default two such processes run at once (--jobs 2), one per core of a
2-core machine. That shortens the run and changes the seconds in the table,
but not the scores, which depend only on the seeds.

The benchmark seeds are 1000, 2000, 3000, 4000 and 5000. `--seed-list`
replaces them with other seeds, so that changes to an oracle can be developed
and compared on seeds that the recorded results do not use; keep the default
for a run that BENCHMARKS.md reports.

Run:  .venv/bin/python benchmarks/efficiency.py [--budget 60] [--seeds 5] [--jobs 2]
      .venv/bin/python benchmarks/efficiency.py --quick --output-dir /tmp/efficiency
      .venv/bin/python benchmarks/efficiency.py --seed-list 11 12 13 \
          --tuners ours-random ours-bayesian --output-dir /tmp/efficiency
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import json
import multiprocessing
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _common import BENCHMARKS_DIR, digits_dataset
from _epoch_budget import BudgetSpent, EpochBudget

import keras  # noqa: E402

import tuner_core  # noqa: E402

OBJECTIVE = "val_accuracy"
BATCH_SIZE = 32
REDUCTION_FACTOR = 3
# Enough trials and Hyperband passes that only the epoch budget ends a search.
MAX_TRIALS = 10_000
HYPERBAND_ITERATIONS = 100
# KerasTuner seeds each random draw with its seed plus the number of draws
# before it, so nearby seeds replay most of each other's configurations.
SEEDS = (1000, 2000, 3000, 4000, 5000)

# Short names for --tuners, and the names the table and the plot show.
TUNERS = {
    "ours-random": "tuner_core RandomSearch",
    "ours-bayesian": "tuner_core BayesianOptimization",
    "ours-hyperband": "tuner_core Hyperband",
    "kerastuner-random": "KerasTuner RandomSearch",
    "kerastuner-bayesian": "KerasTuner BayesianOptimization",
    "kerastuner-hyperband": "KerasTuner Hyperband",
    "optuna": "Optuna TPE + HyperbandPruner",
}
OURS = tuple(TUNERS[key] for key in ("ours-random", "ours-bayesian", "ours-hyperband"))
KERASTUNER = tuple(
    TUNERS[key]
    for key in ("kerastuner-random", "kerastuner-bayesian", "kerastuner-hyperband")
)
OPTUNA = TUNERS["optuna"]
VERSIONED_PACKAGES = ("keras", "tensorflow-cpu", "tensorflow", "keras-tuner", "optuna")


def build_model(hp: Any) -> keras.Model:
    """Build and compile a dense classifier with 1 to 3 hidden layers.

    `hp` is a KerasTuner or tuner_core `HyperParameters`, or an
    `OptunaHyperParameters`. The learning rate spans three decades, so a
    search that finds the good region scores clearly higher than one that
    does not.
    """
    num_layers = hp.Int("num_layers", min_value=1, max_value=3)
    units = hp.Int("units", min_value=32, max_value=256, step=32)
    dropout = hp.Float("dropout", min_value=0.0, max_value=0.5, step=0.1)
    learning_rate = hp.Float(
        "learning_rate", min_value=1e-4, max_value=1e-1, sampling="log"
    )

    model = keras.Sequential([keras.Input(shape=(8, 8)), keras.layers.Flatten()])
    for _ in range(num_layers):
        model.add(keras.layers.Dense(units, activation="relu"))
        model.add(keras.layers.Dropout(dropout))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


class OptunaHyperParameters:
    """Lets `build_model` draw its values from an Optuna trial."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial

    def Int(  # noqa: N802 - KerasTuner's method name
        self, name: str, min_value: int, max_value: int, step: int = 1
    ) -> int:
        return self.trial.suggest_int(name, min_value, max_value, step=step)

    def Float(  # noqa: N802 - KerasTuner's method name
        self,
        name: str,
        min_value: float,
        max_value: float,
        step: float | None = None,
        sampling: str = "linear",
    ) -> float:
        return self.trial.suggest_float(
            name, min_value, max_value, step=step, log=sampling == "log"
        )


class OptunaReporter(keras.callbacks.Callback):
    """Reports the objective after each epoch and stops a trial the pruner prunes."""

    def __init__(self, trial: Any) -> None:
        super().__init__()
        self.trial = trial
        self.best: float | None = None
        self.pruned = False

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        value = float((logs or {})[OBJECTIVE])
        self.best = value if self.best is None else max(self.best, value)
        self.trial.report(value, step=epoch)
        if self.trial.should_prune():
            self.pruned = True
            self.model.stop_training = True


@dataclass
class SearchRecord:
    """One search: its score, what it spent and its best score after each epoch."""

    tuner: str
    seed: int
    best: float | None
    epochs_spent: int
    num_trials: int
    seconds: float
    cpu_seconds: float
    reported_best: float | None
    best_curve: list[float]


@dataclass(frozen=True)
class Settings:
    """The epoch budget of a search and the epochs of its trials."""

    budget: int
    trial_epochs: int
    max_epochs: int


def run_library_tuner(
    tuner_name: str, seed: int, settings: Settings, folder: Path
) -> tuple[EpochBudget, int, float | None]:
    """Run one tuner_core or KerasTuner search.

    Returns the search's epoch budget, its number of trials and the best score
    the tuner itself reports.

    Both libraries take the same arguments, so one function drives both.
    """
    if tuner_name.startswith("KerasTuner"):
        import keras_tuner as library
    else:
        library = tuner_core

    kind = tuner_name.split()[-1]
    common = {
        "objective": OBJECTIVE,
        "seed": seed,
        "directory": str(folder),
        "project_name": f"{kind}-{seed}",
        "overwrite": True,
    }
    fit_kwargs: dict[str, Any] = {}
    if kind == "Hyperband":
        tuner = library.Hyperband(
            build_model,
            max_epochs=settings.max_epochs,
            factor=REDUCTION_FACTOR,
            hyperband_iterations=HYPERBAND_ITERATIONS,
            **common,
        )
    else:
        tuner_class = getattr(library, kind)
        tuner = tuner_class(build_model, max_trials=MAX_TRIALS, **common)
        fit_kwargs["epochs"] = settings.trial_epochs

    dataset = digits_dataset()
    budget = EpochBudget(settings.budget, OBJECTIVE)
    keras.utils.set_random_seed(seed)
    try:
        tuner.search(
            dataset.x_train,
            dataset.y_train,
            batch_size=BATCH_SIZE,
            validation_data=(dataset.x_val, dataset.y_val),
            callbacks=[budget],
            verbose=0,
            **fit_kwargs,
        )
    except BudgetSpent:
        pass

    best_trials = tuner.oracle.get_best_trials(1)
    reported_best = best_trials[0].score if best_trials else None
    return budget, len(tuner.oracle.trials), reported_best


def run_optuna(seed: int, settings: Settings) -> tuple[EpochBudget, int, float | None]:
    """Run the Optuna search with ask and tell.

    Returns the search's epoch budget, its number of trials and the best value
    of its completed trials.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=f"efficiency-{seed}",
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.HyperbandPruner(
            min_resource=1,
            max_resource=settings.max_epochs,
            reduction_factor=REDUCTION_FACTOR,
        ),
    )
    dataset = digits_dataset()
    budget = EpochBudget(settings.budget, OBJECTIVE)
    while not budget.spent:
        trial = study.ask()
        # The same reset and per-trial seeding as tuner_core's trials.
        keras.backend.clear_session(free_memory=False)
        keras.utils.set_random_seed(seed + trial.number * 1000)
        model = build_model(OptunaHyperParameters(trial))
        reporter = OptunaReporter(trial)
        model.fit(
            dataset.x_train,
            dataset.y_train,
            epochs=settings.max_epochs,
            batch_size=BATCH_SIZE,
            validation_data=(dataset.x_val, dataset.y_val),
            callbacks=[budget, reporter],
            verbose=0,
        )
        if reporter.pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, reporter.best)

    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    reported_best = study.best_value if completed else None
    return budget, len(study.trials), reported_best


def run_searches(
    tuner_name: str, seeds: list[int], settings: Settings
) -> list[SearchRecord]:
    """Run one tuner once per seed in this process, after one warm-up fit."""
    dataset = digits_dataset()
    warm_up = build_model(tuner_core.HyperParameters())
    warm_up.fit(
        dataset.x_train, dataset.y_train, epochs=1, batch_size=BATCH_SIZE, verbose=0
    )

    records = []
    for seed in seeds:
        started = time.perf_counter()
        started_cpu = time.process_time()
        with (
            tempfile.TemporaryDirectory() as folder,
            contextlib.redirect_stdout(io.StringIO()),
        ):
            if tuner_name == OPTUNA:
                budget, num_trials, reported_best = run_optuna(seed, settings)
            else:
                budget, num_trials, reported_best = run_library_tuner(
                    tuner_name, seed, settings, Path(folder)
                )
        records.append(
            SearchRecord(
                tuner=tuner_name,
                seed=seed,
                best=budget.best,
                epochs_spent=budget.epochs_spent,
                num_trials=num_trials,
                seconds=time.perf_counter() - started,
                cpu_seconds=time.process_time() - started_cpu,
                reported_best=reported_best,
                best_curve=budget.best_curve,
            )
        )
    return records


def median_curve(records: list[SearchRecord], budget: int) -> list[float]:
    """Return the median over seeds of the best score after each epoch spent."""
    curves = []
    for record in records:
        curve = list(record.best_curve)
        if not curve:
            continue
        # A search that stopped early keeps its last best value.
        curve += [curve[-1]] * (budget - len(curve))
        curves.append(curve)
    return [statistics.median(values) for values in zip(*curves, strict=True)]


def summarize(results: dict[str, list[SearchRecord]]) -> dict[str, float]:
    """Print one row per tuner and return each tuner's median score.

    Under each row it prints the score of each seed.
    """
    medians = {}
    header = (
        f"{'tuner':<34} {'median':>7} {'min':>7} {'max':>7} {'mean':>7} {'trials':>7} "
        f"{'wall s':>7} {'CPU s':>7}"
    )
    print(header)
    print("-" * len(header))
    for tuner_name, records in results.items():
        scores = [r.best for r in records if r.best is not None]
        if not scores:
            print(f"{tuner_name:<34} no epoch trained")
            continue
        medians[tuner_name] = statistics.median(scores)
        trials = statistics.median(r.num_trials for r in records)
        seconds = statistics.median(r.seconds for r in records)
        cpu_seconds = statistics.median(r.cpu_seconds for r in records)
        print(
            f"{tuner_name:<34} {medians[tuner_name]:7.4f} {min(scores):7.4f} "
            f"{max(scores):7.4f} {statistics.mean(scores):7.4f} {trials:7.0f} "
            f"{seconds:7.1f} {cpu_seconds:7.1f}"
        )
        per_seed = ", ".join(
            f"{r.seed}: {r.best:.4f}" for r in records if r.best is not None
        )
        print(f"  per seed: {per_seed}")
    return medians


def print_verdicts(medians: dict[str, float]) -> None:
    """Print whether each target holds, comparing medians over the seeds."""
    for ours, theirs in zip(OURS, KERASTUNER, strict=True):
        if ours in medians and theirs in medians:
            met = medians[ours] >= medians[theirs]
            print(
                f"{ours} >= {theirs}: {medians[ours]:.4f} vs {medians[theirs]:.4f}, "
                f"{'met' if met else 'NOT met'}"
            )

    our_scores = {name: medians[name] for name in OURS if name in medians}
    anchors = {name: medians[name] for name in (*KERASTUNER, OPTUNA) if name in medians}
    if our_scores and anchors:
        our_best = max(our_scores, key=our_scores.__getitem__)
        best_anchor = max(anchors, key=anchors.__getitem__)
        met = our_scores[our_best] >= anchors[best_anchor]
        print(
            f"our best ({our_best}, {our_scores[our_best]:.4f}) >= best anchor "
            f"({best_anchor}, {anchors[best_anchor]:.4f}): "
            f"{'met' if met else 'NOT met'}"
        )


def save_plot(
    results: dict[str, list[SearchRecord]], settings: Settings, path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # The color names the algorithm and the line style the library.
    colors = ("tab:blue", "tab:orange", "tab:green")
    styles = {name: ("-", color) for name, color in zip(OURS, colors, strict=True)}
    styles |= {
        name: ("--", color) for name, color in zip(KERASTUNER, colors, strict=True)
    }
    styles[OPTUNA] = (":", "tab:purple")
    figure, axes = plt.subplots(figsize=(8, 5))
    for tuner_name, records in results.items():
        curve = median_curve(records, settings.budget)
        if curve:
            line_style, color = styles[tuner_name]
            epochs = range(1, len(curve) + 1)
            axes.plot(epochs, curve, line_style, color=color, label=tuner_name)
    num_seeds = max(len(records) for records in results.values())
    axes.set_xlabel("epochs spent")
    axes.set_ylabel(f"best {OBJECTIVE} so far (median of {num_seeds} seeds)")
    axes.set_title(f"digits, {settings.budget}-epoch budget per search")
    axes.set_ylim(bottom=max(0.0, axes.get_ylim()[0]))
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run_all(
    tuner_names: list[str], seeds: list[int], settings: Settings, jobs: int
) -> dict[str, list[SearchRecord]]:
    """Run every tuner's searches, each tuner in a new process, `jobs` at a time."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes=jobs, maxtasksperchild=1) as pool:
        pending = {
            name: pool.apply_async(run_searches, (name, seeds, settings))
            for name in tuner_names
        }
        results = {}
        for name, pending_result in pending.items():
            results[name] = pending_result.get()
            wall = sum(record.seconds for record in results[name])
            cpu = sum(record.cpu_seconds for record in results[name])
            print(
                f"  {name}: {len(seeds)} search(es), {wall:.0f} s wall, {cpu:.0f} s CPU"
            )
    return results


def write_raw_results(
    results: dict[str, list[SearchRecord]],
    settings: Settings,
    seeds: list[int],
    path: Path,
) -> None:
    """Write the settings, the software versions and every search record as JSON."""
    raw = {
        "settings": asdict(settings)
        | {"seeds": seeds, "batch_size": BATCH_SIZE, "factor": REDUCTION_FACTOR},
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            **{name: _version(name) for name in VERSIONED_PACKAGES},
        },
        "searches": [asdict(r) for records in results.values() for r in records],
    }
    path.write_text(json.dumps(raw, indent=1))


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--budget", type=int, default=60, help="total epochs each search may train"
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=None,
        help=f"searches per tuner, with the first of the seeds {SEEDS} (default: all)",
    )
    parser.add_argument(
        "--seed-list",
        type=int,
        nargs="+",
        default=None,
        metavar="SEED",
        help="run these seeds in place of the benchmark seeds, e.g. 11 12 13",
    )
    parser.add_argument(
        "--trial-epochs",
        type=int,
        default=3,
        help="epochs of each RandomSearch and BayesianOptimization trial",
    )
    parser.add_argument(
        "--max-epochs",
        type=int,
        default=9,
        help="the maximum epochs one Hyperband or Optuna trial trains",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="tuner processes that run at once (default: 2, one per core)",
    )
    parser.add_argument(
        "--tuners",
        nargs="+",
        choices=list(TUNERS),
        default=list(TUNERS),
        help="tuners to run (default: all)",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=BENCHMARKS_DIR,
        help="folder for efficiency.png and efficiency.json (default: benchmarks/)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a 12-epoch budget and 1 seed, to check the script",
    )

    args = parser.parse_args()
    if args.seeds is not None and args.seed_list is not None:
        parser.error(
            "--seeds and --seed-list cannot be combined. Pass --seed-list with the "
            "seeds to run, or --seeds with how many benchmark seeds to run."
        )
    if args.quick:
        args.budget = 12
        if args.seed_list is None:
            args.seeds = 1
    if args.seed_list is None:
        num_seeds = len(SEEDS) if args.seeds is None else args.seeds
        if not 1 <= num_seeds <= len(SEEDS):
            parser.error(
                f"--seeds must be between 1 and {len(SEEDS)}, but got {num_seeds}."
            )
        args.seed_list = list(SEEDS[:num_seeds])
    elif len(set(args.seed_list)) != len(args.seed_list):
        parser.error(f"--seed-list must not repeat a seed, but got {args.seed_list}.")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, but got {args.jobs}.")
    return args


def main() -> None:
    args = parse_arguments()
    settings = Settings(args.budget, args.trial_epochs, args.max_epochs)
    seeds = list(args.seed_list)
    print(
        f"Budget: {settings.budget} epochs per search; RandomSearch and "
        f"BayesianOptimization trials train {settings.trial_epochs} epochs; Hyperband "
        f"and the Optuna pruner allow up to {settings.max_epochs} epochs per trial, "
        f"factor {REDUCTION_FACTOR}. Seeds: {seeds}. The last trial of a search stops "
        "after the epoch that spends the budget."
    )
    print(
        f"Each tuner runs its searches in its own process, {args.jobs} process(es) at "
        "a time; wall seconds include waiting for the other process's CPU."
    )

    started = time.perf_counter()
    results = run_all([TUNERS[key] for key in args.tuners], seeds, settings, args.jobs)
    seconds = time.perf_counter() - started
    print(f"All searches: {seconds:.0f} s wall, process start-ups included.")
    print()

    medians = summarize(results)
    print()
    print_verdicts(medians)

    args.output_dir.mkdir(parents=True, exist_ok=True)
    plot_path = args.output_dir / "efficiency.png"
    json_path = args.output_dir / "efficiency.json"
    save_plot(results, settings, plot_path)
    write_raw_results(results, settings, seeds, json_path)
    print(f"Saved {plot_path} and {json_path}.")


if __name__ == "__main__":
    main()
