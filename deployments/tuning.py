"""The scheduled tuning flow: a spec file run with a budget and a registered model name."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.tuning import run_search
from tasks.results import SearchResult
from tasks.spec import TuningSpec, load_spec, parse_spec


@flow(name="tune-with-budget", flow_run_name="tune-{registered_model_name}")
def tune_with_budget_flow(
    spec_path: str,
    max_trials: int,
    registered_model_name: str,
    tracking_uri: str | None = None,
) -> SearchResult:
    """Run the spec's search with `max_trials` trials and register the best model.

    `max_trials` and `registered_model_name` replace the spec's own values, so
    one spec file serves several deployments.
    """
    spec = override_spec(load_spec(spec_path), max_trials, registered_model_name)
    spec_text = Path(spec_path).read_text(encoding="utf-8")
    return run_search(spec, tracking_uri, spec_file=(Path(spec_path).name, spec_text))


def override_spec(spec: TuningSpec, max_trials: int, registered_model_name: str) -> TuningSpec:
    """Return a copy of `spec` with another budget and registered model name, revalidated.

    Raises:
        SpecError: the new values are invalid, e.g. `max_trials` below 1.
    """
    data = spec.model_dump(mode="json", exclude={"base_dir"})
    data["max_trials"] = max_trials
    data["mlflow"]["registered_model_name"] = registered_model_name
    return parse_spec(data, base_dir=spec.base_dir)
