"""A pre-built hypermodel from a spec: the guide's HyperXception example."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

from flows.tuning import tune_flow

pytestmark = pytest.mark.usefixtures("prefect_backend")

GUIDE_SUMMARY = """\
Search space summary
Default search space size: 1
learning_rate (Choice)
{'default': 0.01, 'conditions': [], 'values': [0.01, 0.001, 0.0001], 'ordered': True}"""

XCEPTION_SPEC = """
hypermodel = "tuner_core.applications:HyperXception"
objective = "val_accuracy"
max_trials = 1
seed = 1
tune_new_entries = false

[hypermodel_args]
input_shape = [28, 28, 1]
classes = 10

[[hyperparameters]]
name = "learning_rate"
type = "Choice"
values = [1e-2, 1e-3, 1e-4]

[compile]
loss = "sparse_categorical_crossentropy"

[data]
path = "images.npz"

[fit]
epochs = 1
batch_size = 32

[mlflow]
experiment = "xception"
"""


def test_xception_spec_runs_guide_example(tmp_path: Path, tracking_uri: str) -> None:
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "images.npz",
        x=rng.random((96, 28, 28, 1), dtype=np.float32),
        y=rng.integers(0, 10, size=96),
    )
    spec_path = tmp_path / "xception.toml"
    spec_path.write_text(XCEPTION_SPEC, encoding="utf-8")

    state = tune_flow(str(spec_path), return_state=True)
    result = state.result()

    (trial,) = result.trials
    assert trial["status"] == "COMPLETED"
    assert trial["hyperparameters"]["learning_rate"] in (0.01, 0.001, 0.0001)
    assert trial["hyperparameters"]["sep_num_filters"] == 256
    client = MlflowClient(tracking_uri)
    summary = client.download_artifacts(result.parent_run_id, "search_space.txt")
    assert Path(summary).read_text(encoding="utf-8") == GUIDE_SUMMARY
    parent = client.get_run(result.parent_run_id)
    assert parent.data.params["hypermodel"] == "tuner_core.applications:HyperXception"
    assert parent.data.params["compile.loss"] == "sparse_categorical_crossentropy"

    flow_run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as prefect_client:
        artifacts = prefect_client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
            )
        )
    markdown = [a.data for a in artifacts if a.type == "markdown"]
    assert markdown == [f"```\n{GUIDE_SUMMARY}\n```"]
