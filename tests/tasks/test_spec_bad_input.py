"""Bad spec files fail before any trial, naming the field, the value and the fix."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks.preparation import validate_spec_file
from tasks.spec import SpecError, parse_spec
from tuner_core import UnreadHyperparametersWarning

TINY_MODEL = 'hypermodel = "hypermodels:build_tiny_model"'
DIGITS_8X8 = "sample_shape = [8, 8]"
SPEC_TEMPLATE = """
{top}

[data]
{data}

{tables}
"""


def hyperparameter(**fields: object) -> str:
    """Write one `[[hyperparameters]]` table."""
    lines = ["[[hyperparameters]]"]
    for name, value in fields.items():
        rendered = f'"{value}"' if isinstance(value, str) else repr(value).lower()
        if isinstance(value, list):
            rendered = "[" + ", ".join(repr(v) for v in value) + "]"
        lines.append(f"{name} = {rendered}")
    return "\n".join(lines) + "\n"


# (case id, top-level keys, [data] keys, other tables, pattern the message must match)
BAD_SPECS = [
    (
        "int-min-above-max",
        TINY_MODEL,
        DIGITS_8X8,
        hyperparameter(name="units", type="Int", min_value=16, max_value=8),
        r"hyperparameters\[0\]: Int 'units': min_value must be <= max_value, but got "
        r"min_value=16, max_value=8\. Swap the bounds",
    ),
    (
        "log-sampling-min-zero",
        TINY_MODEL,
        DIGITS_8X8,
        hyperparameter(
            name="learning_rate",
            type="Float",
            min_value=0.0,
            max_value=0.1,
            sampling="log",
        ),
        r"hyperparameters\[0\]: Float 'learning_rate': sampling='log' needs "
        r"min_value > 0, but got min_value=0\.0\. Raise min_value above 0",
    ),
    (
        "step-zero",
        TINY_MODEL,
        DIGITS_8X8,
        hyperparameter(name="units", type="Int", min_value=8, max_value=16, step=0),
        r"hyperparameters\[0\]: Int 'units': step must be > 0, but got step=0\. "
        r"Pass a positive step",
    ),
    (
        "int-bound-not-integral",
        TINY_MODEL,
        DIGITS_8X8,
        hyperparameter(name="units", type="Int", min_value=8.5, max_value=16),
        r"hyperparameters\[0\]: Int 'units': min_value must be an integer, but got "
        r"min_value=8\.5\. Pass a whole number",
    ),
    (
        "choice-without-values",
        TINY_MODEL,
        DIGITS_8X8,
        hyperparameter(name="learning_rate", type="Choice", values=[]),
        r"hyperparameters\[0\]: Choice 'learning_rate': values must be a non-empty "
        r"list, but got values=\[\]\. Pass the candidate values",
    ),
    (
        "choice-mixed-types",
        TINY_MODEL,
        DIGITS_8X8,
        hyperparameter(name="learning_rate", type="Choice", values=[1, 0.1]),
        r"hyperparameters\[0\]: Choice 'learning_rate': values must all have one "
        r"type, but got values=\[1, 0\.1\].*Write them all as floats",
    ),
    (
        "choice-default-not-in-values",
        TINY_MODEL,
        DIGITS_8X8,
        hyperparameter(
            name="learning_rate", type="Choice", values=[0.01, 0.001], default=0.5
        ),
        r"hyperparameters\[0\]: Choice 'learning_rate': default must be one of "
        r"values=\[0\.01, 0\.001\], but got default=0\.5\. Pick a default",
    ),
    (
        "name-fixed-and-tuned",
        TINY_MODEL,
        DIGITS_8X8,
        hyperparameter(name="learning_rate", type="Fixed", value=0.01)
        + hyperparameter(name="learning_rate", type="Choice", values=[0.01, 0.001]),
        r"hyperparameters\[1\]: the name 'learning_rate' is both fixed and tuned "
        r"\(hyperparameters\[0\] has type 'Fixed', this entry 'Choice'\)\. "
        r"Received: name='learning_rate'\. Keep the Fixed entry",
    ),
    (
        "unknown-hyperparameter-type",
        TINY_MODEL,
        DIGITS_8X8,
        hyperparameter(name="units", type="Integer", min_value=8, max_value=16),
        r"hyperparameters\[0\]\.type: unknown hyperparameter type\. Received: "
        r"type='Integer'\. Use one of Int, Float, Choice, Boolean, Fixed",
    ),
    (
        "objective-direction-unknown",
        TINY_MODEL + '\nobjective = {name = "val_accuracy", direction = "maximize"}',
        DIGITS_8X8,
        "",
        r"objective\.direction: must be 'min' or 'max'\. Received: "
        r"direction='maximize'\. Use 'max'",
    ),
    (
        "objective-direction-not-inferable",
        TINY_MODEL + '\nobjective = "val_my_score"',
        DIGITS_8X8,
        "",
        r"objective: cannot infer whether to minimize or maximize 'val_my_score'\. "
        r"Received: objective='val_my_score'\. Give the direction: objective = "
        r"\{name = 'val_my_score', direction = 'max'\} \(or 'min'\)\.$",
    ),
    (
        "hypermodel-module-not-found",
        'hypermodel = "no_such_module:build_model"',
        DIGITS_8X8,
        "",
        r"hypermodel: module 'no_such_module' was not found\. Received: "
        r"'no_such_module:build_model'.*Fix the module path",
    ),
    (
        "hypermodel-attribute-not-found",
        'hypermodel = "hypermodels:no_such_function"',
        DIGITS_8X8,
        "",
        r"hypermodel: module 'hypermodels' has no attribute 'no_such_function'\. "
        r"Received: 'hypermodels:no_such_function'\. Use one of the names",
    ),
    (
        "hypermodel-without-colon",
        'hypermodel = "hypermodels.build_tiny_model"',
        DIGITS_8X8,
        "",
        r"hypermodel: must have the form 'module:attribute'\. Received: "
        r"hypermodel='hypermodels\.build_tiny_model'\. Write the module's import path",
    ),
    (
        "data-file-missing",
        TINY_MODEL,
        'path = "missing.npz"',
        "",
        r"data\.path: data file not found: '.*missing\.npz'\. .*Fix the path or "
        r"create the file",
    ),
    (
        "npz-label-count-differs",
        TINY_MODEL,
        'path = "{mismatched_npz}"',
        "",
        r"data\.y_key: the number of labels differs from the number of samples\. "
        r"Received: 'x' with shape \(10, 8, 8\) and 'y' with shape \(9,\).*"
        r"Give exactly one label per sample",
    ),
    (
        "csv-label-missing-on-a-row",
        TINY_MODEL,
        'path = "{unlabeled_csv}"\nlabel_column = "digit"',
        "",
        r"data\.label_column: the number of labels \(2\) differs from the number of "
        r"samples \(3\).*column 'digit' is empty on line\(s\) 3\. Fill in those labels",
    ),
    (
        "csv-label-column-missing",
        TINY_MODEL,
        'path = "{unlabeled_csv}"\nlabel_column = "label"',
        "",
        r"data\.label_column: no column named 'label' in .*Received: "
        r"label_column='label'\. Use one of \['a', 'b', 'digit'\]",
    ),
    (
        "npz-key-missing",
        TINY_MODEL,
        'path = "{mismatched_npz}"\ny_key = "labels"',
        "",
        r"data\.y_key: no array named 'labels' in .*Received: y_key='labels'\. Use "
        r"one of \['x', 'y'\]",
    ),
    (
        "max-trials-zero",
        TINY_MODEL + "\nmax_trials = 0",
        DIGITS_8X8,
        "",
        r"max_trials: must be at least 1\. Received: max_trials=0\. Set max_trials to "
        r"a positive integer",
    ),
    (
        "max-trials-not-integer",
        TINY_MODEL + '\nmax_trials = "ten"',
        DIGITS_8X8,
        "",
        r"max_trials: must be an integer\. Received: max_trials='ten'\. Write "
        r"max_trials as an integer",
    ),
    (
        "concurrency-zero",
        TINY_MODEL + "\nconcurrency = 0",
        DIGITS_8X8,
        "",
        r"concurrency: must be at least 1\. Received: concurrency=0\. Set concurrency",
    ),
    (
        "concurrency-without-worker-processes",
        TINY_MODEL + "\nconcurrency = 2\nworker_processes = false",
        DIGITS_8X8,
        "",
        r"worker_processes: concurrent trials need worker processes.*Received: "
        r"worker_processes=false with concurrency=2\. Remove worker_processes",
    ),
    (
        "unknown-engine",
        TINY_MODEL + '\nengine = "ray"',
        DIGITS_8X8,
        "",
        r"engine: unknown engine\. Received: engine='ray'\. Use 'local' to run "
        r"trials on this machine, or 'dask'",
    ),
    (
        "dask-address-without-port",
        TINY_MODEL + '\nengine = "dask"',
        DIGITS_8X8,
        '[dask]\naddress = "tcp://127.0.0.1"',
        r"dask\.address: must be a Dask scheduler address with a host and a port\. "
        r"Received: address='tcp://127\.0\.0\.1'\. Write the address that `dask "
        r"scheduler` prints",
    ),
    (
        "dask-address-not-an-address",
        TINY_MODEL + '\nengine = "dask"',
        DIGITS_8X8,
        '[dask]\naddress = "not an address"',
        r"dask\.address: must be a Dask scheduler address with a host and a port\. "
        r"Received: address='not an address'\. Write the address that `dask "
        r"scheduler` prints, e\.g\. 'tcp://127\.0\.0\.1:8786', or remove address",
    ),
    (
        "dask-address-port-out-of-range",
        TINY_MODEL + '\nengine = "dask"',
        DIGITS_8X8,
        '[dask]\naddress = "tcp://127.0.0.1:99999"',
        r"dask\.address: must be a Dask scheduler address with a host and a port\. "
        r"Received: address='tcp://127\.0\.0\.1:99999'\.",
    ),
    (
        "dask-n-workers-zero",
        TINY_MODEL + '\nengine = "dask"',
        DIGITS_8X8,
        "[dask]\nn_workers = 0",
        r"dask\.n_workers: must be at least 1\. Received: n_workers=0\. Set the "
        r"number of worker processes",
    ),
    (
        "dask-table-with-local-engine",
        TINY_MODEL,
        DIGITS_8X8,
        "[dask]\nn_workers = 2",
        r"dask: applies only to engine = 'dask'\. Received: a \[dask\] table with "
        r"engine='local'\. Add engine = 'dask'",
    ),
    (
        "dask-n-workers-with-address",
        TINY_MODEL + '\nengine = "dask"',
        DIGITS_8X8,
        '[dask]\naddress = "tcp://127.0.0.1:8786"\nn_workers = 2',
        r"dask\.n_workers: sizes the local cluster that the flow starts.*Received: "
        r"n_workers=2 with address='tcp://127\.0\.0\.1:8786'\. Remove n_workers",
    ),
    (
        "dask-with-worker-processes",
        TINY_MODEL + '\nengine = "dask"\nconcurrency = 2\nworker_processes = false',
        DIGITS_8X8,
        "",
        r"worker_processes: applies only to engine = 'local'.*Received: "
        r"worker_processes=false with engine='dask'\. Remove worker_processes",
    ),
    (
        "unknown-field",
        TINY_MODEL + "\nmax_trial = 5",
        DIGITS_8X8,
        "",
        r"max_trial: unknown field\. Received: max_trial=5\. Did you mean "
        r"'max_trials'\? Remove it, or correct its spelling",
    ),
    (
        "unknown-field-in-table",
        TINY_MODEL,
        DIGITS_8X8,
        "[fit]\nepoch = 3",
        r"fit\.epoch: unknown field\. Received: fit\.epoch=3\. Did you mean "
        r"'epochs'\? Remove it, or correct its spelling",
    ),
    (
        "unknown-table",
        TINY_MODEL,
        DIGITS_8X8,
        "[fitt]\nepochs = 3",
        r"fitt: unknown field\. Received: fitt=\{'epochs': 3\}\. Did you mean "
        r"'fit'\? Remove it, or correct its spelling",
    ),
    (
        "unknown-field-unlike-any",
        TINY_MODEL + "\nzzz = 1",
        DIGITS_8X8,
        "",
        r"zzz: unknown field\. Received: zzz=1\. Remove it, or correct its "
        r"spelling\.$",
    ),
    (
        "registered-model-name-with-slash-and-colon",
        TINY_MODEL,
        DIGITS_8X8,
        '[mlflow]\nregistered_model_name = "a/b:c"',
        r"mlflow\.registered_model_name: must not contain '/' or ':', because MLflow "
        r"rejects such model names when it registers the best model\. Received: "
        r"registered_model_name='a/b:c'\. Replace them, e\.g\. "
        r"registered_model_name = 'a-b-c'\.",
    ),
    (
        "registered-model-name-dot-dot",
        TINY_MODEL,
        DIGITS_8X8,
        '[mlflow]\nregistered_model_name = "..digits"',
        r"mlflow\.registered_model_name: must not be '\.' or start with '\.\.', "
        r"because MLflow reads model names as paths .*Received: "
        r"registered_model_name='\.\.digits'\. Use another name, e\.g\. "
        r"registered_model_name = 'digits'\.",
    ),
    (
        "validation-split-holds-out-one-sample",
        TINY_MODEL,
        DIGITS_8X8 + "\nvalidation_split = 0.0001",
        "",
        r"data\.validation_split: holds out only 1 of 1797 samples for validation, "
        r"too few to choose the best trial on\. Received: validation_split=0\.0001\. "
        r"Set validation_split between 0\.006 and 0\.994, which keeps at least 10 "
        r"samples on each side, e\.g\. validation_split = 0\.2\.",
    ),
    (
        "validation-split-leaves-one-training-sample",
        TINY_MODEL,
        DIGITS_8X8 + "\nvalidation_split = 0.9999",
        "",
        r"data\.validation_split: holds out 1796 of 1797 samples for validation and "
        r"leaves only 1 for training\. Received: validation_split=0\.9999\. Set "
        r"validation_split between 0\.006 and 0\.994",
    ),
    (
        "csv-source-for-binary-file",
        TINY_MODEL,
        'path = "{binary_npz}"\nsource = "csv"',
        "",
        r"data\.path: '.*binary\.npz' is not UTF-8 text, so it cannot be read as a "
        r"\.csv file: byte 0x[0-9a-f]{2} at line \d+ is not valid UTF-8\. Received: "
        r"path='.*binary\.npz' with source='csv'\. For a NumPy archive written by "
        r"numpy\.savez, set source = 'npz'",
    ),
    (
        "data-path-is-a-folder",
        TINY_MODEL,
        'path = "{data_folder}"',
        "",
        r"data: path: '.*bad-data\d*' is a folder, but the data must be one file\. "
        r"Received: path='.*bad-data\d*'\. Set path to one of the data files in it, "
        r"such as '.*binary\.npz', '.*mismatched\.npz', '.*unlabeled\.csv'\.",
    ),
    (
        "data-path-is-a-folder-named-like-a-file",
        TINY_MODEL,
        'path = "{folder_npz}"',
        "",
        r"data\.path: '.*folder\.npz' is a folder, but the data must be one file\. "
        r"Received: path='.*folder\.npz'\. Set path to a \.npz or \.csv file\.",
    ),
    (
        "objective-misspelled-suggests-name",
        TINY_MODEL + '\nobjective = "val_acuracy"',
        DIGITS_8X8,
        "",
        r"objective: cannot infer whether to minimize or maximize 'val_acuracy'\. "
        r"Received: objective='val_acuracy'\. Did you mean 'val_accuracy'\? If not, "
        r"give the direction: objective = \{name = 'val_acuracy', direction = "
        r"'max'\} \(or 'min'\)\.",
    ),
    (
        "validation-split-above-one",
        TINY_MODEL,
        DIGITS_8X8 + "\nvalidation_split = 1.5",
        "",
        r"data\.validation_split: must be between 0 and 1, exclusive\. Received: "
        r"validation_split=1\.5\. Use a fraction",
    ),
    (
        "epochs-zero",
        TINY_MODEL,
        DIGITS_8X8,
        "[fit]\nepochs = 0",
        r"fit\.epochs: must be at least 1\. Received: epochs=0\. Set epochs",
    ),
    (
        "unknown-optimizer",
        TINY_MODEL,
        DIGITS_8X8,
        '[compile]\noptimizer = {class_name = "Adamx"}',
        r"compile\.optimizer: Keras cannot build this optimizer .*Received: "
        r"optimizer=\{'class_name': 'Adamx', 'config': \{\}\}\. Did you mean "
        r"'Adamax'\? Use a Keras optimizer",
    ),
    (
        "optimizer-argument-misspelled",
        TINY_MODEL,
        DIGITS_8X8,
        '[compile]\noptimizer = {class_name = "Adam", config = {learning_rat = 0.01}}',
        r"compile\.optimizer: Keras cannot build this optimizer \(Argument\(s\) not "
        r"recognized.*Received: optimizer=\{'class_name': 'Adam', 'config': "
        r"\{'learning_rat': 0\.01\}\}\. Did you mean 'learning_rate' for "
        r"'learning_rat'\? Use a Keras optimizer",
    ),
    (
        "optimizer-name-unlike-any",
        TINY_MODEL,
        DIGITS_8X8,
        '[compile]\noptimizer = "zzz"',
        r"compile\.optimizer: Keras cannot build this optimizer .*Received: "
        r"optimizer='zzz'\. Use a Keras optimizer",
    ),
    (
        "unknown-loss",
        TINY_MODEL,
        DIGITS_8X8,
        '[compile]\nloss = "msee"',
        r"compile\.loss: unknown Keras loss\. Received: loss='msee'\. Use a name from "
        r"keras\.losses",
    ),
    (
        "field-not-for-type",
        TINY_MODEL,
        DIGITS_8X8,
        hyperparameter(
            name="learning_rate",
            type="Float",
            min_value=0.001,
            max_value=0.01,
            values=[0.001],
        ),
        r"hyperparameters\[0\]: values does not apply to type 'Float' \(hyperparameter "
        r"'learning_rate'\)\. Received: values=\[0\.001\]\. Remove it",
    ),
    (
        "unknown-sampling",
        TINY_MODEL,
        DIGITS_8X8,
        hyperparameter(
            name="learning_rate",
            type="Float",
            min_value=0.001,
            max_value=0.01,
            sampling="logarithmic",
        ),
        r"hyperparameters\[0\]\.sampling: unknown sampling\. Received: "
        r"sampling='logarithmic'\. Use one of linear, log, reverse_log",
    ),
    (
        "new-entry-not-allowed",
        TINY_MODEL + "\nallow_new_entries = false",
        DIGITS_8X8,
        hyperparameter(name="units", type="Int", min_value=8, max_value=16, step=8),
        r"allow_new_entries: the build function declares 'dropout', which no "
        r"\[\[hyperparameters\]\] entry names.*Received: allow_new_entries=false\. "
        r"Add a \[\[hyperparameters\]\] entry with name = 'dropout' .*or set "
        r"allow_new_entries = true\.",
    ),
    (
        "unknown-oracle",
        TINY_MODEL + '\noracle = "annealing"',
        DIGITS_8X8,
        "",
        r"oracle: unknown oracle\. Received: oracle='annealing'\. Use one of "
        r"\['random', 'grid', 'bayesian', 'hyperband'\]",
    ),
    (
        "hyperband-option-for-random",
        TINY_MODEL + "\nmax_epochs = 4",
        DIGITS_8X8,
        "",
        r"max_epochs: applies only to oracle = 'hyperband'\. Received: max_epochs=4 "
        r"with oracle='random'\. Remove max_epochs, or set oracle = 'hyperband'",
    ),
    (
        "bayesian-option-for-grid",
        TINY_MODEL + '\noracle = "grid"\nbeta = 2.0',
        DIGITS_8X8,
        "",
        r"beta: applies only to oracle = 'bayesian'\. Received: beta=2\.0 with "
        r"oracle='grid'\. Remove beta, or set oracle = 'bayesian'",
    ),
    (
        "hyperband-factor-below-two",
        TINY_MODEL + '\noracle = "hyperband"\nfactor = 1',
        DIGITS_8X8,
        "",
        r"factor: must be at least 2\. Received: factor=1\. Use e\.g\. factor = 3",
    ),
    (
        "hyperband-max-epochs-zero",
        TINY_MODEL + '\noracle = "hyperband"\nmax_epochs = 0',
        DIGITS_8X8,
        "",
        r"max_epochs: must be at least 1\. Received: max_epochs=0\. Set max_epochs "
        r"to a positive integer",
    ),
    (
        "hyperband-iterations-zero",
        TINY_MODEL + '\noracle = "hyperband"\nhyperband_iterations = 0',
        DIGITS_8X8,
        "",
        r"hyperband_iterations: must be at least 1\. Received: "
        r"hyperband_iterations=0\.",
    ),
    (
        "bayesian-initial-points-zero",
        TINY_MODEL + '\noracle = "bayesian"\nnum_initial_points = 0',
        DIGITS_8X8,
        "",
        r"num_initial_points: must be at least 1\. Received: num_initial_points=0\. "
        r"Set num_initial_points to a positive integer, e\.g\. num_initial_points = 5",
    ),
    (
        "bayesian-alpha-zero",
        TINY_MODEL + '\noracle = "bayesian"\nalpha = 0.0',
        DIGITS_8X8,
        "",
        r"alpha: must be above 0\. Received: alpha=0\.0\. Use a small noise variance",
    ),
    (
        "bayesian-beta-negative",
        TINY_MODEL + '\noracle = "bayesian"\nbeta = -1.0',
        DIGITS_8X8,
        "",
        r"beta: must be 0 or more\. Received: beta=-1\.0\. Use e\.g\. beta = 2\.6",
    ),
    (
        "executions-per-trial-zero",
        TINY_MODEL + "\nexecutions_per_trial = 0",
        DIGITS_8X8,
        "",
        r"executions_per_trial: must be at least 1\. Received: "
        r"executions_per_trial=0\.",
    ),
    (
        "retries-negative",
        TINY_MODEL + "\nmax_retries_per_trial = -1",
        DIGITS_8X8,
        "",
        r"max_retries_per_trial: must be 0 or more\. Received: "
        r"max_retries_per_trial=-1\. Set the number of times",
    ),
    (
        "consecutive-failures-zero",
        TINY_MODEL + "\nmax_consecutive_failed_trials = 0",
        DIGITS_8X8,
        "",
        r"max_consecutive_failed_trials: must be at least 1\. Received: "
        r"max_consecutive_failed_trials=0\.",
    ),
    (
        "overwrite-without-project",
        TINY_MODEL + "\noverwrite = true",
        DIGITS_8X8,
        "",
        r"overwrite: applies only to a search saved under a project_name\. Received: "
        r"overwrite=true and no project_name\. Add project_name",
    ),
    (
        "project-name-with-path",
        TINY_MODEL + '\nproject_name = "../elsewhere"',
        DIGITS_8X8,
        "",
        r"project_name: must start with a letter or digit .*Received: "
        r"project_name='\.\./elsewhere'\.",
    ),
    (
        "hypermodel-args-for-function",
        TINY_MODEL,
        DIGITS_8X8,
        "[hypermodel_args]\nunits = 8",
        r"hypermodel_args: 'hypermodels:build_tiny_model' is not a HyperModel class, "
        r"so it takes no constructor arguments\. Received: hypermodel_args="
        r"\{'units': 8\}\. Remove \[hypermodel_args\]",
    ),
    (
        "hypermodel-args-rejected",
        'hypermodel = "tuner_core.applications:HyperXception"',
        DIGITS_8X8,
        "[hypermodel_args]\ninput_shape = [28, 28]\nclasses = 10",
        r"hypermodel_args: constructing HyperXception failed: `input_shape` must be "
        r"\(height, width, channels\).*Received: hypermodel_args=\{'input_shape': "
        r"\[28, 28\], 'classes': 10\}\. Give its constructor arguments",
    ),
    (
        "conditional-parent-undeclared",
        TINY_MODEL,
        DIGITS_8X8,
        hyperparameter(
            name="units",
            type="Int",
            min_value=8,
            max_value=16,
            parent_name="layers",
            parent_values=[1],
        ),
        r"hyperparameters\[0\]\.parent_name: no \[\[hyperparameters\]\] entry above "
        r"this one declares 'layers'\. Received: parent_name='layers'\. Set "
        r"parent_name to the name of an entry declared above it",
    ),
    (
        "float-entry-for-int",
        TINY_MODEL,
        DIGITS_8X8,
        hyperparameter(name="units", type="Float", min_value=8.5, max_value=16.0),
        r"hyperparameters\[0\]: this Float entry gives 'units' floats, but the build "
        r"function declares 'units' as Int with whole numbers\. Received: "
        r"type='Float'\..*building the model failed \(ValueError: .*\)\. Use type = "
        r"'Int', as the build function does, with whole-number bounds such as "
        r"min_value = 9 and max_value = 16\.",
    ),
    (
        "objective-not-in-compile-metrics",
        TINY_MODEL + '\nobjective = "val_accuracy"',
        DIGITS_8X8,
        '[compile]\nmetrics = ["sparse_categorical_crossentropy"]',
        r"compile\.metrics: the objective 'val_accuracy' needs the metric 'accuracy', "
        r"but \[compile\] metrics replaces the model's metrics with "
        r"\['sparse_categorical_crossentropy'\]\..*Add 'accuracy' to \[compile\] "
        r"metrics, or set the objective to one of \['val_loss', "
        r"'val_sparse_categorical_crossentropy', 'loss', ",
    ),
    (
        "sample-shape-model-rejects",
        TINY_MODEL,
        "sample_shape = [64]",
        "",
        r"data: the model, built with the default hyperparameters, rejects samples "
        r"of shape \(64,\) from the data \(ValueError: .*\)\. Received: "
        r"sample_shape=\[64\]\. Set \[data\] sample_shape to the input shape",
    ),
    (
        "objective-not-reported-by-model",
        TINY_MODEL + '\nobjective = { name = "val_acc", direction = "max" }',
        DIGITS_8X8,
        "",
        r"objective: the model does not report the metric 'val_acc'\. Received: "
        r"objective='val_acc'\. The model, built with the default hyperparameters, "
        r"reports \['val_accuracy', 'val_loss', 'accuracy', 'loss'\]\. Set the "
        r"objective to one of them",
    ),
    (
        "hyperparameter-name-misspelled",
        TINY_MODEL,
        DIGITS_8X8,
        hyperparameter(name="learning_rte", type="Fixed", value=0.001),
        r"hyperparameters\[0\]\.name: the build function declares no hyperparameter "
        r"'learning_rte', so this entry would have no effect\. Received: "
        r"name='learning_rte'\. Did you mean 'learning_rate'\? The build function "
        r"declares \['dropout', 'learning_rate', 'units'\]\.",
    ),
    (
        "hyperparameters-as-one-table",
        TINY_MODEL,
        DIGITS_8X8,
        '[hyperparameters]\nname = "units"\ntype = "Fixed"\nvalue = 8\n',
        r"hyperparameters: must be a list of tables\. Received: hyperparameters=\{"
        r"'name': 'units'.*\}\. Write each entry as its own \[\[hyperparameters\]\] "
        r"table, with double brackets\.",
    ),
    (
        "objective-empty",
        TINY_MODEL + '\nobjective = " "',
        DIGITS_8X8,
        "",
        r"objective\.name: must not be empty\. Received: name=' '\. Name the metric "
        r"to optimize, e\.g\. objective = 'val_accuracy'",
    ),
    (
        "trial-timeout-zero",
        TINY_MODEL + "\ntrial_timeout_seconds = 0",
        DIGITS_8X8,
        "",
        r"trial_timeout_seconds: must be a number of seconds above 0\. Received: "
        r"trial_timeout_seconds=0\. Set the seconds one trial may take, e\.g\. "
        r"trial_timeout_seconds = 600",
    ),
    (
        "trial-timeout-negative",
        TINY_MODEL + "\ntrial_timeout_seconds = -2.5",
        DIGITS_8X8,
        "",
        r"trial_timeout_seconds: must be a number of seconds above 0\. Received: "
        r"trial_timeout_seconds=-2\.5\. Set the seconds",
    ),
    (
        "trial-timeout-string",
        TINY_MODEL + '\ntrial_timeout_seconds = "10 minutes"',
        DIGITS_8X8,
        "",
        r"trial_timeout_seconds: must be a number of seconds above 0\. Received: "
        r"trial_timeout_seconds='10 minutes'\. Set the seconds",
    ),
    (
        "trial-timeout-infinite",
        TINY_MODEL + "\ntrial_timeout_seconds = inf",
        DIGITS_8X8,
        "",
        r"trial_timeout_seconds: must be a number of seconds above 0\. Received: "
        r"trial_timeout_seconds=inf\. Set the seconds .* or remove it for no limit",
    ),
    (
        "gpus-unknown-word",
        TINY_MODEL + '\ngpus = "all"',
        DIGITS_8X8,
        "",
        r"gpus: must be 'auto' or a list of distinct GPU ids\. Received: "
        r"gpus='all'\. Write gpus = 'auto' to use the visible GPUs",
    ),
    (
        "gpus-negative-id",
        TINY_MODEL + "\ngpus = [0, -1]\nconcurrency = 2",
        DIGITS_8X8,
        "",
        r"gpus: must be 'auto' or a list of distinct GPU ids\. Received: "
        r"gpus=\[0, -1\]\.",
    ),
    (
        "gpus-repeated-id",
        TINY_MODEL + "\ngpus = [1, 1]\nconcurrency = 2",
        DIGITS_8X8,
        "",
        r"gpus: must be 'auto' or a list of distinct GPU ids\. Received: "
        r"gpus=\[1, 1\]\.",
    ),
    (
        "gpus-fewer-than-concurrency",
        TINY_MODEL + "\ngpus = [0, 1]\nconcurrency = 3",
        DIGITS_8X8,
        "",
        r"gpus: concurrency=3 needs one GPU per concurrent trial, but 2 GPU\(s\) are "
        r"available: \['0', '1'\]\. Set concurrency to at most 2, or set gpus = \[\]",
    ),
    (
        "gpus-with-dask-engine",
        TINY_MODEL + '\nengine = "dask"\ngpus = [0]',
        DIGITS_8X8,
        "",
        r"gpus: applies only to engine = 'local', because the Dask workers choose "
        r"their own devices\. Received: gpus=\[0\] with engine='dask'\. Remove gpus",
    ),
    (
        "gpus-for-the-flow-process",
        TINY_MODEL + "\ngpus = [1]",
        DIGITS_8X8,
        "",
        r"gpus: pins worker processes, but with concurrency = 1 and no "
        r"worker_processes = true .*Received: gpus=\[1\]\. Add worker_processes = "
        r"true, or remove gpus",
    ),
]


@pytest.fixture(scope="module")
def data_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Write bad data files, and folders where a data file belongs.

    The files are a .npz with 10 samples but 9 labels, a .npz whose bytes are
    not UTF-8 (its floats contain the byte 0x80) and a .csv with a missing
    label. An empty folder named like a .npz file lies beside their folder.
    """
    folder = tmp_path_factory.mktemp("bad-data")
    mismatched = folder / "mismatched.npz"
    np.savez(mismatched, x=np.zeros((10, 8, 8), np.float32), y=np.zeros(9, np.int64))
    binary = folder / "binary.npz"
    np.savez(binary, x=np.ones((30, 8, 8), np.float32), y=np.ones(30, np.int64))
    unlabeled = folder / "unlabeled.csv"
    unlabeled.write_text(
        "a,b,digit\n0.1,0.2,1\n0.3,0.4,\n0.5,0.6,0\n", encoding="utf-8"
    )
    folder_npz = tmp_path_factory.mktemp("folders") / "folder.npz"
    folder_npz.mkdir()
    return {
        "mismatched_npz": mismatched,
        "binary_npz": binary,
        "unlabeled_csv": unlabeled,
        "data_folder": folder,
        "folder_npz": folder_npz,
    }


@pytest.mark.parametrize(
    ("top", "data", "tables", "pattern"),
    [case[1:] for case in BAD_SPECS],
    ids=[case[0] for case in BAD_SPECS],
)
def test_bad_spec_rejected_before_trials(
    tmp_path: Path,
    data_files: dict[str, Path],
    top: str,
    data: str,
    tables: str,
    pattern: str,
) -> None:
    text = SPEC_TEMPLATE.format(top=top, data=data.format(**data_files), tables=tables)
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(text, encoding="utf-8")

    with pytest.raises(SpecError, match=pattern) as caught:
        validate_spec_file(spec_path)

    assert len(caught.value.problems) == 1, caught.value.problems


def test_bad_spec_table_size() -> None:
    assert len(BAD_SPECS) >= 15


def test_spec_error_lists_every_problem(tmp_path: Path) -> None:
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(
        f"{TINY_MODEL}\nmax_trials = 0\nconcurrency = 0\n[fit]\nepochs = 0\n",
        encoding="utf-8",
    )

    with pytest.raises(SpecError) as caught:
        validate_spec_file(spec_path)

    problems = caught.value.problems
    assert len(problems) == 3
    assert any(p.startswith("max_trials:") for p in problems)
    assert any(p.startswith("concurrency:") for p in problems)
    assert any(p.startswith("fit.epochs:") for p in problems)


def test_choice_with_none_rejected() -> None:
    # TOML has no null, so this case only arises from a spec built in Python.
    spec = {
        "hypermodel": "hypermodels:build_tiny_model",
        "hyperparameters": [
            {"name": "learning_rate", "type": "Choice", "values": [0.01, None]}
        ],
    }

    with pytest.raises(
        SpecError,
        match=r"hyperparameters\[0\]: Choice 'learning_rate': values must not contain "
        r"None, but got values=\[0\.01, None\]\. Remove None",
    ):
        parse_spec(spec)


def test_missing_spec_file_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"

    with pytest.raises(
        SpecError, match=r"spec file not found: '.*nowhere\.toml'\. Check"
    ):
        validate_spec_file(missing)


def test_folder_as_spec_suggests_files(tmp_path: Path) -> None:
    (tmp_path / "digits.toml").write_text(TINY_MODEL, encoding="utf-8")

    with pytest.raises(
        SpecError,
        match=r"the spec path '.*' is a folder, not a TOML file\. Pass one of the "
        r"\.toml files in it, such as '.*digits\.toml'\.",
    ):
        validate_spec_file(tmp_path)


def test_relative_folder_as_data_path_named(tmp_path: Path) -> None:
    # The folder is next to the spec, not in the working directory, so telling it
    # from a file needs the spec's folder.
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "train.csv").write_text("a,label\n", encoding="utf-8")
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(
        SPEC_TEMPLATE.format(top=TINY_MODEL, data='path = "samples"', tables=""),
        encoding="utf-8",
    )

    with pytest.raises(
        SpecError,
        match=r"data: path: 'samples' is a folder, but the data must be one file\. "
        r"Received: path='samples'\. Set path to one of the data files in it, such "
        r"as 'samples/train\.csv'\.$",
    ):
        validate_spec_file(spec_path)


def test_spec_not_utf8_names_line(tmp_path: Path) -> None:
    spec_path = tmp_path / "latin1.toml"
    spec_path.write_bytes(f"{TINY_MODEL}\n# caf\xe9\n".encode("latin-1"))

    with pytest.raises(
        SpecError, match=r"not UTF-8 text: byte 0xe9 at line 2 is not valid UTF-8"
    ):
        validate_spec_file(spec_path)


def test_invalid_toml_names_line(tmp_path: Path) -> None:
    spec_path = tmp_path / "broken.toml"
    spec_path.write_text('hypermodel = "a:b"\nmax_trials = \n', encoding="utf-8")

    with pytest.raises(
        SpecError, match=r"not valid TOML \(.*line 2.*\)\. Fix the syntax"
    ):
        validate_spec_file(spec_path)


def test_unrelated_unread_name_only_warns(
    tmp_path: Path, data_files: dict[str, Path]
) -> None:
    tables = hyperparameter(name="momentum", type="Fixed", value=0.9)
    text = SPEC_TEMPLATE.format(top=TINY_MODEL, data=DIGITS_8X8, tables=tables)
    spec_path = tmp_path / "spec.toml"
    spec_path.write_text(text, encoding="utf-8")

    with pytest.warns(UnreadHyperparametersWarning) as caught:
        report = validate_spec_file(spec_path)

    assert report.spec.hyperparameters[0].name == "momentum"
    warning = caught[0].message
    assert isinstance(warning, UnreadHyperparametersWarning)
    assert warning.unread == ["momentum"]
    assert warning.declared == ["dropout", "learning_rate", "units"]
