"""Where audit records live: Azure Table Storage in the Function App's own storage account.

Found as the Functions host finds its storage: the `AzureWebJobsStorage` connection string (Azurite
locally), or in Azure the identity-based `AzureWebJobsStorage__tableServiceUri` / `__accountName` with
`__credential=managedidentity` (and `__clientId` for a user-assigned identity): no keys. Local development
without any storage setting logs the records instead.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from .errors import AuditUnavailable, ValidationError
from .settings import Settings

log = logging.getLogger("audit")

PARTITION = "audit"
MAX_TIME_MS = 10**15  # row keys count down from here, so the newest record sorts first
# A mutation waits on the audit write: keep a storage outage from holding it for long.
_BOUNDS: dict[str, Any] = {"retry_total": 2, "retry_backoff_factor": 0.2, "connection_timeout": 3, "read_timeout": 10}

Entity = dict[str, Any]


@dataclass(frozen=True)
class AuditQuery:
    """What GET /audit asks for: equality filters, a time window, a page size and where to go on from."""

    filters: Mapping[str, str]
    since: datetime | None
    until: datetime | None
    top: int
    continuation: str | None


class AuditStore(Protocol):
    def write(self, entity: Entity) -> None: ...

    def query(self, asked: AuditQuery) -> tuple[list[Entity], str | None]: ...


class TableAuditStore:
    """Records as entities of one table partition, newest first by row key."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._table_ready = False
        self._lock = threading.Lock()

    def write(self, entity: Entity) -> None:
        from azure.core.exceptions import AzureError

        try:
            self._ensure_table()
            self._client.upsert_entity(entity)
        except AzureError as error:
            log.error("Audit store write failed: %s", type(error).__name__)
            raise AuditUnavailable(
                f"The audit trail could not be written ({type(error).__name__}), so the change was not made. "
                "Check the Function App's storage account (AzureWebJobsStorage) and its Storage Table Data "
                "Contributor role, then try again.",
                headers={"Retry-After": "30"},
            ) from None

    def query(self, asked: AuditQuery) -> tuple[list[Entity], str | None]:
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
            parameters["newest"] = row_key_prefix(until)
        if since is not None and since.timestamp() > 0:
            clauses.append("RowKey lt @oldest")
            parameters["oldest"] = row_key_prefix(since, after=True)
        try:
            pages = self._client.query_entities(
                " and ".join(clauses), parameters=parameters, results_per_page=asked.top
            ).by_page(continuation_token=_decode_token(asked.continuation))
            entities = [dict(entity) for entity in next(pages, [])]
            token = pages.continuation_token
        except ResourceNotFoundError:
            return [], None  # nothing was ever recorded
        except AzureError as error:
            raise AuditUnavailable(
                f"The audit trail could not be read ({type(error).__name__}). Check AzureWebJobsStorage."
            ) from None
        return entities, _encode_token(token)

    def close(self) -> None:
        self._client.close()

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

    def __init__(self, render: Callable[[Entity], dict[str, Any]]) -> None:
        self._render = render

    def write(self, entity: Entity) -> None:
        log.info("audit %s", json.dumps(self._render(entity)))

    def query(self, asked: AuditQuery) -> tuple[list[Entity], str | None]:
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

    def write(self, entity: Entity) -> None:
        raise AuditUnavailable(self.message)

    def query(self, asked: AuditQuery) -> tuple[list[Entity], str | None]:
        raise AuditUnavailable(self.message)


def store_for(settings: Settings, credential: Callable[[], Any], render: Callable[[Entity], dict[str, Any]]) -> Any:
    """The store the settings name; `credential` gives the app's shared credential for identity-based access.

    Called when the application context is built, so a missing store is reported at start, not on the first
    change."""
    storage = settings.storage
    table = settings.audit_table
    if storage.connection_string:
        from azure.data.tables import TableClient

        return TableAuditStore(
            TableClient.from_connection_string(storage.connection_string, table_name=table, **_BOUNDS)
        )
    endpoint = storage.table_service_uri
    if not endpoint and storage.account_name:
        endpoint = f"https://{storage.account_name}.table.core.windows.net"
    if endpoint:
        from azure.data.tables import TableClient

        chosen = _storage_credential(storage.client_id, storage.credential, credential)
        return TableAuditStore(TableClient(endpoint, table_name=table, credential=chosen, **_BOUNDS))
    if settings.auth_mode == "none":
        log.warning("No AzureWebJobsStorage setting: audit records go to the log (local development, AUTH_MODE=none).")
        return LogAuditStore(render)
    log.error("No audit store is configured: every change will be refused. %s", UnconfiguredAuditStore.message)
    return UnconfiguredAuditStore()


def _storage_credential(client_id: str | None, kind: str | None, shared: Callable[[], Any]) -> Any:
    if client_id and (kind or "").strip().lower() == "managedidentity":
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=client_id)
    return shared()


def row_key_prefix(when: datetime, *, after: bool = False) -> str:
    """The row-key bound of a moment after 1970 (row keys count down from MAX_TIME_MS)."""
    milliseconds = max(int(when.timestamp() * 1000), 1)
    return f"{MAX_TIME_MS - milliseconds + (1 if after else 0):015d}"


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
