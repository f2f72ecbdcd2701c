"""Custom Prefect events of the pipeline: new data arrived, and a champion degraded.

The retraining deployment's triggers match these event names and take the
parameters of the retraining run from the event payload.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect.events import Event, emit_event
from prefect.events.worker import EventsWorker
from prefect.settings import PREFECT_API_URL

logger = logging.getLogger(__name__)

DATA_UPDATED_EVENT = "tuneflow.data.updated"
MODEL_DEGRADED_EVENT = "tuneflow.model.degraded"
DATA_RESOURCE_PREFIX = "tuneflow.data."
MODEL_RESOURCE_PREFIX = "tuneflow.registered-model."
FLUSH_TIMEOUT_SECONDS = 10.0


def emit_and_flush(
    event: str,
    resource: dict[str, str],
    payload: dict[str, Any],
    timeout_seconds: float = FLUSH_TIMEOUT_SECONDS,
) -> Event:
    """Emit an event and wait until it is sent, so a process that exits next keeps it.

    `emit_event` only queues the event; this drains Prefect's events worker.

    Raises:
        RuntimeError: no Prefect API URL is set, or Prefect has events
            disabled. Without an API URL, Prefect would send the event to a
            temporary server that no deployment listens to.
    """
    if not PREFECT_API_URL.value():
        raise RuntimeError(
            f"Cannot emit the event {event!r}: PREFECT_API_URL is not set. Set it to "
            "the server that runs the deployments, e.g. http://127.0.0.1:4200/api."
        )
    sent = emit_event(event, resource=resource, payload=payload)
    if sent is None:
        raise RuntimeError(
            f"Prefect did not emit the event {event!r}. Check the API URL of the "
            "active profile with `prefect config view`."
        )

    _, not_done = EventsWorker.drain_all(timeout=timeout_seconds)
    if not_done:
        logger.warning(
            "Event %s (%s) may not have been sent within %.0f s.",
            event, sent.id, timeout_seconds,
        )
    return sent


def emit_data_updated(data_path: str | Path, fingerprint: str, num_samples: int) -> Event:
    """Announce that the data file at `data_path` has new content.

    The payload carries the absolute path, so a run started by the event finds
    the file from any working directory.
    """
    path = str(Path(data_path).resolve())
    return emit_and_flush(
        DATA_UPDATED_EVENT,
        resource={
            "prefect.resource.id": f"{DATA_RESOURCE_PREFIX}{fingerprint[:16]}",
            "prefect.resource.name": Path(path).name,
        },
        payload={"data_path": path, "fingerprint": fingerprint, "num_samples": num_samples},
    )


def emit_model_degraded(
    registered_model_name: str,
    *,
    version: str,
    data_path: str,
    objective: str,
    score: float,
    threshold: float,
) -> Event:
    """Announce that the champion's objective on `data_path` fell past `threshold`."""
    return emit_and_flush(
        MODEL_DEGRADED_EVENT,
        resource={
            "prefect.resource.id": f"{MODEL_RESOURCE_PREFIX}{registered_model_name}",
            "prefect.resource.name": registered_model_name,
        },
        payload={
            "registered_model_name": registered_model_name,
            "version": version,
            "data_path": data_path,
            "objective": objective,
            "score": score,
            "threshold": threshold,
        },
    )


def announce_data_file(data_path: str | Path) -> Event:
    """Fingerprint the data file at `data_path` and emit the new-data event for it.

    The file's format comes from its suffix (.npz or .csv) with the default
    keys `x` and `y` or the label column `label`.

    Raises:
        DataError: the file's suffix is neither .npz nor .csv, or the file
            cannot be read as a data file.
        RuntimeError: Prefect is not configured to send events.
    """
    from pydantic import ValidationError

    from tasks.data import DataError, make_data_ref
    from tasks.spec import DataSpec

    try:
        data_spec = DataSpec(path=Path(data_path).resolve())
    except ValidationError as error:
        raise DataError(error.errors()[0]["msg"].removeprefix("Value error, ")) from None
    data_ref = make_data_ref(data_spec, seed=0)
    return emit_data_updated(data_path, data_ref.fingerprint, data_ref.num_samples)
