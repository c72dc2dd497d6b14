"""The audit trail: who changed which deployment, what they asked, and what came of it.

ARM's activity log shows only the Function App's identity, so this record is the only one that names
the caller. Every mutation writes its record before anything is sent to ARM and completes it with the
outcome; when the store cannot be written the mutation is refused (503 AuditUnavailable), so there is no
unrecorded change. A request that turns out to change nothing (the state asked for is already there or on
its way, or a repeated DELETE) is recorded with `changed: false`.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from .audit_store import MAX_TIME_MS, PARTITION, AuditQuery, AuditStore
from .auth import Caller
from .errors import AuditUnavailable, ServiceError, ValidationError
from .settings import Settings
from .web import parse_int

log = logging.getLogger("audit")


@dataclass
class AuditRecord:
    action: str
    caller: Caller
    account: str
    deployment: str
    request: dict[str, Any]
    request_id: str
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    id: str = ""
    outcome: dict[str, Any] | None = None
    changed: bool | None = None  # None until known; False when no change was sent to ARM
    arm_correlation_id: str | None = None
    # Set for a change in another tenant, or a deploy whose source account is in another tenant than its target.
    source_tenant: str | None = None
    target_tenant: str | None = None
    project: str | None = None  # a Foundry project's alias: `deployment` then names a serverless endpoint

    def __post_init__(self) -> None:
        if not self.id:
            inverted = MAX_TIME_MS - int(self.time.timestamp() * 1000)
            self.id = f"{inverted:015d}-{uuid.uuid4().hex[:12]}"

    def entity(self) -> dict[str, Any]:
        outcome = self.outcome or {}
        entity: dict[str, Any] = {
            "PartitionKey": PARTITION,
            "RowKey": self.id,
            "time": self.time,
            "action": self.action,
            "callerObjectId": self.caller.object_id or "",
            "callerAppId": self.caller.app_id or "",
            "callerName": self.caller.name or "",
            "account": self.account,
            "deployment": self.deployment,
            "request": json.dumps(self.request),
            "requestId": self.request_id,
            "completed": self.outcome is not None,
            "outcomeStatus": outcome.get("status", 0),
            "outcomeProvisioningState": outcome.get("provisioningState") or "",
            "outcomeCode": outcome.get("code") or "",
            "armCorrelationId": self.arm_correlation_id or "",
        }
        if self.changed is not None:
            entity["changed"] = self.changed
        if self.project:
            entity["project"] = self.project
        if self.source_tenant or self.target_tenant:
            entity["sourceTenant"] = self.source_tenant or ""
            entity["targetTenant"] = self.target_tenant or ""
        return entity


def record_view(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The API's view of a stored record."""
    when = entity.get("time")
    return {
        "id": entity["RowKey"],
        "time": when.isoformat() if isinstance(when, datetime) else str(when),
        "action": entity.get("action"),
        "changed": entity.get("changed"),
        "caller": {
            "objectId": entity.get("callerObjectId") or None,
            "appId": entity.get("callerAppId") or None,
            "name": entity.get("callerName") or None,
        },
        "account": entity.get("account"),
        "deployment": entity.get("deployment"),
        **({"project": entity["project"]} if entity.get("project") else {}),
        "request": json.loads(entity.get("request") or "{}"),
        "outcome": {
            "status": entity.get("outcomeStatus"),
            "provisioningState": entity.get("outcomeProvisioningState") or None,
            "code": entity.get("outcomeCode") or None,
        }
        if entity.get("completed")
        else None,
        "requestId": entity.get("requestId"),
        "armCorrelationId": entity.get("armCorrelationId") or None,
        **(
            {"tenants": {"source": entity.get("sourceTenant") or None, "target": entity.get("targetTenant") or None}}
            if entity.get("sourceTenant") or entity.get("targetTenant")
            else {}
        ),
    }


class AuditTrail:
    """Audits one request's mutation: write the record first, complete it with what the caller got."""

    def __init__(self, caller: Caller, request_id: str, store: AuditStore) -> None:
        self.caller = caller
        self.request_id = request_id
        self._store = store

    @contextmanager
    def record(
        self, action: str, account: str, deployment: str, request: dict[str, Any], *, project: str | None = None
    ) -> Iterator[AuditRecord]:
        entry = AuditRecord(action, self.caller, account, deployment, request, self.request_id, project=project)
        self._store.write(entry.entity())
        try:
            yield entry
        except ServiceError as error:
            entry.outcome = {"status": error.status, "provisioningState": None, "code": error.code}
            entry.arm_correlation_id = error.correlation_id or entry.arm_correlation_id
            self._complete(entry)
            raise
        except Exception:
            entry.outcome = {"status": 500, "provisioningState": None, "code": "InternalServerError"}
            self._complete(entry)
            raise
        else:
            if entry.outcome is None:
                entry.outcome = {"status": 200, "provisioningState": None, "code": None}
            self._complete(entry)

    def _complete(self, entry: AuditRecord) -> None:
        try:
            self._store.write(entry.entity())
        except AuditUnavailable:
            # The change was made; the record stays with outcome null, which is what it says: not known.
            log.error("Audit record %s could not be completed", entry.id)


def query(
    store: AuditStore,
    settings: Settings,
    *,
    deployment: str | None,
    account: str | None,
    since: str | None,
    until: str | None,
    top: str | None,
    continuation: str | None,
) -> dict[str, Any]:
    """GET /audit: records newest first, a page at a time, with a nextLink carrying the continuation."""
    if account:
        settings.account(account)  # an alias the settings do not name is 404 AccountNotFound, as on every route
    filters = {name: value for name, value in (("deployment", deployment), ("account", account)) if value}
    size = parse_int(top, "top", 1, 100, 50)
    asked = AuditQuery(filters, _when(since, "since"), _when(until, "until"), size, continuation)
    entities, token = store.query(asked)
    page: dict[str, Any] = {"value": [record_view(entity) for entity in entities]}
    if token:
        query_string = {**filters, **{k: v for k, v in (("since", since), ("until", until)) if v}}
        query_string.update({"top": str(size), "continuationToken": token})
        page["nextLink"] = f"/audit?{urlencode(query_string)}"
    return page


def _when(raw: str | None, name: str) -> datetime | None:
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(raw.strip().upper().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"{name} must be an ISO 8601 date-time, e.g. 2026-11-22T08:00:00Z.",
            code="InvalidQueryParameter",
            target=name,
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
