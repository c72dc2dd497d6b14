"""The audit trail: who changed which deployment, what they asked, and what came of it.

ARM's activity log shows only the Function App's identity, so this record is the only one that names
the caller. Every mutation writes its record before anything is sent to ARM and completes it with the
outcome; when the store cannot be written the mutation is refused (503 AuditUnavailable), so there is no
unrecorded change.

Stored in Azure Table Storage in the Function App's own storage account, found as the Functions host finds
it: the `AzureWebJobsStorage` connection string (Azurite locally), or in Azure the identity-based
`AzureWebJobsStorage__tableServiceUri` / `__accountName` with `__credential=managedidentity` (and
`__clientId` for a user-assigned identity): no keys.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from .auth import Caller
from .errors import AuditUnavailable, ServiceError, ValidationError
from .web import parse_int

log = logging.getLogger("audit")

DEFAULT_TABLE = "audit"
PARTITION = "audit"
_MAX_TIME_MS = 10**15  # row keys count down from here, so the newest record sorts first
# A mutation waits on the audit write: keep a storage outage from holding it for long.
_BOUNDS: dict[str, Any] = {"retry_total": 2, "retry_backoff_factor": 0.2, "connection_timeout": 3, "read_timeout": 10}


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
    arm_correlation_id: str | None = None

    def __post_init__(self) -> None:
        if not self.id:
            inverted = _MAX_TIME_MS - int(self.time.timestamp() * 1000)
            self.id = f"{inverted:015d}-{uuid.uuid4().hex[:12]}"

    def entity(self) -> dict[str, Any]:
        outcome = self.outcome or {}
        return {
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


def record_view(entity: Mapping[str, Any]) -> dict[str, Any]:
    """The API's view of a stored record."""
    when = entity.get("time")
    return {
        "id": entity["RowKey"],
        "time": when.isoformat() if isinstance(when, datetime) else str(when),
        "action": entity.get("action"),
        "caller": {
            "objectId": entity.get("callerObjectId") or None,
            "appId": entity.get("callerAppId") or None,
            "name": entity.get("callerName") or None,
        },
        "account": entity.get("account"),
        "deployment": entity.get("deployment"),
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
    }


@dataclass(frozen=True)
class AuditQuery:
    """What GET /audit asks for: equality filters, a time window, a page size and where to go on from."""

    filters: Mapping[str, str]
    since: datetime | None
    until: datetime | None
    top: int
    continuation: str | None


class AuditStore(Protocol):
    def write(self, record: AuditRecord) -> None: ...

    def query(self, asked: AuditQuery) -> tuple[list[dict[str, Any]], str | None]: ...


class TableAuditStore:
    """Records as entities of one table partition, newest first by row key."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._table_ready = False
        self._lock = threading.Lock()

    def write(self, record: AuditRecord) -> None:
        from azure.core.exceptions import AzureError

        try:
            self._ensure_table()
            self._client.upsert_entity(record.entity())
        except AzureError as error:
            log.error("Audit store write failed: %s", type(error).__name__)
            raise AuditUnavailable(
                f"The audit trail could not be written ({type(error).__name__}), so the change was not made. "
                "Check the Function App's storage account (AzureWebJobsStorage) and its Storage Table Data "
                "Contributor role, then try again.",
                headers={"Retry-After": "30"},
            ) from None

    def query(self, asked: AuditQuery) -> tuple[list[dict[str, Any]], str | None]:
        from azure.core.exceptions import AzureError, ResourceNotFoundError

        clauses = ["PartitionKey eq @partition"]
        parameters: dict[str, Any] = {"partition": PARTITION}
        for name, value in asked.filters.items():
            clauses.append(f"{name} eq @{name}")
            parameters[name] = value
        until, since = asked.until, asked.since
        if until is not None:  # newer records have smaller row keys
            if until.timestamp() < 0:
                return [], None  # every record is from after 1970
            clauses.append("RowKey ge @newest")
            parameters["newest"] = _row_key_prefix(until)
        if since is not None and since.timestamp() > 0:
            clauses.append("RowKey lt @oldest")
            parameters["oldest"] = _row_key_prefix(since, after=True)
        try:
            pages = self._client.query_entities(
                " and ".join(clauses), parameters=parameters, results_per_page=asked.top
            ).by_page(continuation_token=_decode_token(asked.continuation))
            entities = [record_view(entity) for entity in next(pages, [])]
            token = pages.continuation_token
        except ResourceNotFoundError:
            return [], None  # nothing was ever recorded
        except AzureError as error:
            raise AuditUnavailable(
                f"The audit trail could not be read ({type(error).__name__}). Check AzureWebJobsStorage."
            ) from None
        return entities, _encode_token(token)

    def _ensure_table(self) -> None:
        if self._table_ready:
            return
        from azure.core.exceptions import ResourceExistsError

        with self._lock:
            if not self._table_ready:
                with suppress(ResourceExistsError):
                    self._client.create_table()
                self._table_ready = True


class LogAuditStore:
    """Local development without storage settings: records go to the log."""

    def write(self, record: AuditRecord) -> None:
        log.info("audit %s", json.dumps(record_view(record.entity())))

    def query(self, asked: AuditQuery) -> tuple[list[dict[str, Any]], str | None]:
        raise AuditUnavailable(
            "The audit trail goes to the log in this local set-up (AUTH_MODE=none and no AzureWebJobsStorage); "
            "set AzureWebJobsStorage (e.g. UseDevelopmentStorage=true with Azurite) to query it."
        )


class UnconfiguredAuditStore:
    """No storage setting outside local development: refuse every mutation, say what to set."""

    message = (
        "No audit store is configured, so changes are refused. Set AzureWebJobsStorage (a connection string, "
        "e.g. UseDevelopmentStorage=true for Azurite) or AzureWebJobsStorage__tableServiceUri with "
        "AzureWebJobsStorage__credential=managedidentity."
    )

    def write(self, record: AuditRecord) -> None:
        raise AuditUnavailable(self.message)

    def query(self, asked: AuditQuery) -> tuple[list[dict[str, Any]], str | None]:
        raise AuditUnavailable(self.message)


def store_from_environment(env: Mapping[str, str], auth_mode: str) -> AuditStore:
    table = env.get("AUDIT_TABLE", "").strip() or DEFAULT_TABLE
    connection = env.get("AzureWebJobsStorage", "").strip()
    if connection:
        from azure.data.tables import TableClient

        return TableAuditStore(TableClient.from_connection_string(connection, table_name=table, **_BOUNDS))
    endpoint = env.get("AzureWebJobsStorage__tableServiceUri", "").strip()
    account_name = env.get("AzureWebJobsStorage__accountName", "").strip()
    if not endpoint and account_name:
        endpoint = f"https://{account_name}.table.core.windows.net"
    if endpoint:
        from azure.data.tables import TableClient

        return TableAuditStore(TableClient(endpoint, table_name=table, credential=_storage_credential(env), **_BOUNDS))
    if auth_mode == "none":
        log.warning("No AzureWebJobsStorage setting: audit records go to the log (local development, AUTH_MODE=none).")
        return LogAuditStore()
    return UnconfiguredAuditStore()


def _storage_credential(env: Mapping[str, str]) -> Any:
    client_id = env.get("AzureWebJobsStorage__clientId", "").strip()
    if client_id and env.get("AzureWebJobsStorage__credential", "").strip().lower() == "managedidentity":
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=client_id)
    from .identity import get_credential

    return get_credential()


_store_lock = threading.Lock()
_store: AuditStore | None = None


def get_store() -> AuditStore:
    """The process-wide store, made on first use (the host starts even when storage is unreachable)."""
    global _store
    if _store is None:
        from .auth import auth_mode

        with _store_lock:
            if _store is None:
                _store = store_from_environment(os.environ, auth_mode())
    return _store


class AuditTrail:
    """Audits one request's mutation: write the record first, complete it with what the caller got."""

    def __init__(self, caller: Caller, request_id: str, store: AuditStore | None = None) -> None:
        self.caller = caller
        self.request_id = request_id
        self._store = store

    @contextmanager
    def record(self, action: str, account: str, deployment: str, request: dict[str, Any]) -> Iterator[AuditRecord]:
        store = self._store or get_store()
        entry = AuditRecord(action, self.caller, account, deployment, request, self.request_id)
        store.write(entry)
        started = time.perf_counter()
        try:
            yield entry
        except ServiceError as error:
            entry.outcome = {"status": error.status, "provisioningState": None, "code": error.code}
            entry.arm_correlation_id = error.correlation_id or entry.arm_correlation_id
            self._complete(store, entry)
            raise
        except Exception:
            entry.outcome = {"status": 500, "provisioningState": None, "code": "InternalServerError"}
            self._complete(store, entry)
            raise
        else:
            if entry.outcome is None:
                entry.outcome = {"status": 200, "provisioningState": None, "code": None}
            self._complete(store, entry)
        finally:
            log.debug("audited %s in %.1f ms", action, (time.perf_counter() - started) * 1000)

    @staticmethod
    def _complete(store: AuditStore, entry: AuditRecord) -> None:
        try:
            store.write(entry)
        except AuditUnavailable:
            # The change was made; the record stays with outcome null, which is what it says: not known.
            log.error("Audit record %s could not be completed", entry.id)


def query(
    *,
    deployment: str | None,
    account: str | None,
    since: str | None,
    until: str | None,
    top: str | None,
    continuation: str | None,
    store: AuditStore | None = None,
) -> dict[str, Any]:
    """GET /audit: records newest first, a page at a time, with a nextLink carrying the continuation."""
    filters = {name: value for name, value in (("deployment", deployment), ("account", account)) if value}
    size = _top(top)
    asked = AuditQuery(filters, _when(since, "since"), _when(until, "until"), size, continuation)
    records, token = (store or get_store()).query(asked)
    page: dict[str, Any] = {"value": records}
    if token:
        from urllib.parse import urlencode

        query_string = {**filters, **{k: v for k, v in (("since", since), ("until", until)) if v}}
        query_string.update({"top": str(size), "continuationToken": token})
        page["nextLink"] = f"/audit?{urlencode(query_string)}"
    return page


def _row_key_prefix(when: datetime, *, after: bool = False) -> str:
    """The row-key bound of a moment after 1970 (row keys count down from _MAX_TIME_MS)."""
    milliseconds = max(int(when.timestamp() * 1000), 1)
    return f"{_MAX_TIME_MS - milliseconds + (1 if after else 0):015d}"


def _top(raw: str | None) -> int:
    return parse_int(raw, "top", 1, 100, 50)


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


def _encode_token(token: Any) -> str | None:
    if not token:
        return None
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode().rstrip("=")


def _decode_token(raw: str | None) -> Any:
    if not raw:
        return None
    try:
        token = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if not (isinstance(token, dict) and all(isinstance(v, str | None) for v in token.values())):
            raise ValueError("not a table continuation")
        return token
    except (binascii.Error, ValueError):
        raise ValidationError(
            "continuationToken is not one this service issued; follow nextLink as given.",
            code="InvalidQueryParameter",
            target="continuationToken",
        ) from None
