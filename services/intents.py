"""Deploy intents: "deploy this fine-tuning job's model when the job finishes", kept in Table Storage.

`POST /fine_tuning/jobs/{id}/deploy` on a job still queued or running stores an intent instead of refusing; the
sweep advances it: `Pending` (waiting for the job) -> `Deploying` (ARM is creating the deployment) ->
`Succeeded` | `Failed` (with the job's own error when the job failed or was cancelled). Moves are conditional on
the record's ETag, so two instances sweeping at once never both deploy. One intent per job and account.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .errors import Conflict, NotFound
from .work_store import ETAG, WorkStore

PARTITION = "intent"
OPEN_STATES = ("Pending", "Deploying")
FINISHED_STATES = ("Succeeded", "Failed")


def intent_key(alias: str, job_id: str) -> str:
    return f"{alias}:{job_id}"


def create_intent(
    store: WorkStore, alias: str, job_id: str, deployment: str, request: dict[str, Any], requested_by: str
) -> dict[str, Any]:
    """A new Pending intent; the same request again answers the open intent; another one while it is open is a
    409 (DELETE is not offered: deploy another job, or wait for this one)."""
    now = datetime.now(UTC)
    fields = {
        "jobId": job_id,
        "account": alias,
        "deployment": deployment,
        "request": json.dumps(request, sort_keys=True),
        "state": "Pending",
        "requestedBy": requested_by,
        "created": now,
        "updated": now,
        "error": "",
        "result": "",
    }
    key = intent_key(alias, job_id)
    if store.insert(PARTITION, key, fields):
        return intent_view({**fields, "RowKey": key})
    existing = store.get(PARTITION, key)
    if existing is None or existing.get("state") in FINISHED_STATES:
        store.replace(PARTITION, key, fields, etag=existing.get(ETAG) if existing else None)
        return intent_view({**fields, "RowKey": key})
    if existing.get("request") == fields["request"]:
        return intent_view(existing)
    raise Conflict(
        f"Job '{job_id}' already has an open deploy intent (deployment '{existing.get('deployment')}', "
        f"{existing.get('state')}). GET /api/fine_tuning/jobs/{job_id}/deploy shows it.",
        code="DeployIntentExists",
        target="job_id",
    )


def get_intent(store: WorkStore, alias: str, job_id: str) -> dict[str, Any]:
    found = store.get(PARTITION, intent_key(alias, job_id))
    if found is None:
        raise NotFound(
            f"Job '{job_id}' has no deploy intent in account '{alias}'. POST /api/fine_tuning/jobs/{job_id}/deploy "
            "on a queued or running job makes one.",
            code="DeployIntentNotFound",
            target="job_id",
        )
    return intent_view(found)


def open_intents(store: WorkStore) -> list[dict[str, Any]]:
    """The records of every intent not finished yet (with their ETags), oldest first."""
    found = [entity for state in OPEN_STATES for entity in store.query(PARTITION, state=state)]
    return sorted(found, key=lambda entity: str(entity.get("created")))


def pending_intents(store: WorkStore) -> list[dict[str, Any]]:
    """Every intent still waiting for its job or its deployment, as the API shows them."""
    return [intent_view(entity) for entity in open_intents(store)]


def move(store: WorkStore, record: dict[str, Any], state: str, **fields: Any) -> dict[str, Any] | None:
    """The record in its new state, or None when another instance moved it first."""
    updated = {**record, **fields, "state": state, "updated": datetime.now(UTC)}
    for name in ("error", "result"):
        if not isinstance(updated.get(name), str):
            updated[name] = json.dumps(updated[name])
    key = str(record["RowKey"])
    if not store.replace(PARTITION, key, updated, etag=record.get(ETAG)):
        return None
    return store.get(PARTITION, key)


def intent_view(entity: dict[str, Any]) -> dict[str, Any]:
    def when(value: Any) -> str | None:
        return value.isoformat() if isinstance(value, datetime) else (str(value) if value else None)

    def parsed(value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) and value else None

    return {
        "jobId": entity.get("jobId"),
        "account": entity.get("account"),
        "status": entity.get("state"),
        "deployment": entity.get("deployment"),
        "request": parsed(entity.get("request")) or {},
        "requestedBy": entity.get("requestedBy") or None,
        "createdAt": when(entity.get("created")),
        "updatedAt": when(entity.get("updated")),
        "error": parsed(entity.get("error")),
        "result": parsed(entity.get("result")),
    }
