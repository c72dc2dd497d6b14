"""Where queued requests and deploy intents are tracked: one Table Storage table in the Function App's storage.

Each record is an entity (partition: `request` or `intent`; row: its id) with an ETag, so several instances can
claim, update and finish the same record without overwriting one another (`insert` refuses an existing row,
`replace` with an ETag refuses a row changed meanwhile). Found as the audit table is: `AzureWebJobsStorage`, or the
identity-based `AzureWebJobsStorage__tableServiceUri` / `__accountName`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from .errors import ConfigurationError, StateUnavailable
from .settings import Settings

Entity = dict[str, Any]
ETAG = "_etag"  # a read record's ETag, for a conditional `replace`
_BOUNDS: dict[str, Any] = {"retry_total": 2, "retry_backoff_factor": 0.2, "connection_timeout": 3, "read_timeout": 10}


class WorkStore:
    """Records of one table, by partition and id."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._ready = False
        self._lock = threading.Lock()

    def get(self, partition: str, key: str) -> Entity | None:
        from azure.core.exceptions import ResourceNotFoundError

        with self._errors():
            try:
                found = self._client.get_entity(partition, key)
            except ResourceNotFoundError:
                return None
        return {**found, ETAG: found.metadata.get("etag")}

    def insert(self, partition: str, key: str, fields: Entity) -> bool:
        """Create the record; False when it exists already (another delivery or instance made it)."""
        from azure.core.exceptions import ResourceExistsError

        with self._errors():
            try:
                self._client.create_entity({**_plain(fields), "PartitionKey": partition, "RowKey": key})
            except ResourceExistsError:
                return False
        return True

    def replace(self, partition: str, key: str, fields: Entity, *, etag: str | None = None) -> bool:
        """Write the record whole; with `etag`, only if nobody changed it since it was read (else False)."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        entity = {**_plain(fields), "PartitionKey": partition, "RowKey": key}
        with self._errors():
            if etag is None:
                self._client.upsert_entity(entity, mode=UpdateMode.REPLACE)
                return True
            try:
                self._client.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                return False
        return True

    def query(self, partition: str, **equal: str) -> list[Entity]:
        from azure.core.exceptions import ResourceNotFoundError

        clauses = ["PartitionKey eq @partition", *(f"{name} eq @{name}" for name in equal)]
        with self._errors():
            try:
                found = self._client.query_entities(" and ".join(clauses), parameters={"partition": partition, **equal})
                return [{**entity, ETAG: entity.metadata.get("etag")} for entity in found]
            except ResourceNotFoundError:
                return []

    def close(self) -> None:
        self._client.close()

    def _errors(self) -> Any:
        return _Guard(self)

    def _ensure_table(self) -> None:
        if self._ready:
            return
        from azure.core.exceptions import ResourceExistsError

        with self._lock:
            if not self._ready:
                with suppress(ResourceExistsError):
                    self._client.create_table()
                self._ready = True


class _Guard:
    """Makes sure the table exists, and turns a storage failure into StateUnavailable (503, retried)."""

    def __init__(self, store: WorkStore) -> None:
        self._store = store

    def __enter__(self) -> None:
        from azure.core.exceptions import AzureError

        try:
            self._store._ensure_table()
        except AzureError as error:
            raise _unavailable(error) from None

    def __exit__(self, kind: Any, error: Any, _trace: Any) -> None:
        from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError

        if isinstance(error, AzureError) and not isinstance(error, ResourceExistsError | ResourceNotFoundError):
            raise _unavailable(error) from None


def _plain(fields: Entity) -> Entity:
    return {name: value for name, value in fields.items() if name not in (ETAG, "PartitionKey", "RowKey")}


def _unavailable(error: Exception) -> StateUnavailable:
    return StateUnavailable(
        f"The table of queued requests and deploy intents could not be reached ({type(error).__name__}). Check the "
        "Function App's storage (AzureWebJobsStorage) and its Storage Table Data Contributor role.",
        headers={"Retry-After": "30"},
    )


def make_work_store(settings: Settings, credential: Callable[[], Any]) -> WorkStore:
    """The store in the Function App's own storage; a ConfigurationError when no storage setting names one."""
    from azure.data.tables import TableClient

    storage, table = settings.storage, settings.work_table
    if storage.connection_string:
        return WorkStore(TableClient.from_connection_string(storage.connection_string, table_name=table, **_BOUNDS))
    endpoint = storage.table_service_uri
    if not endpoint and storage.account_name:
        endpoint = f"https://{storage.account_name}.table.core.windows.net"
    if not endpoint:
        raise ConfigurationError(
            "Queued deployments and deploy intents need the Function App's storage: set AzureWebJobsStorage "
            "(UseDevelopmentStorage=true with Azurite) or AzureWebJobsStorage__tableServiceUri.",
            target="AzureWebJobsStorage",
        )
    return WorkStore(
        TableClient(endpoint, table_name=table, credential=storage_credential(settings, credential), **_BOUNDS)
    )


def storage_credential(settings: Settings, shared: Callable[[], Any]) -> Any:
    """The identity for the Function App's storage: `__clientId` with `__credential=managedidentity`, else the
    app's shared credential."""
    storage = settings.storage
    if storage.client_id and (storage.credential or "").strip().lower() == "managedidentity":
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=storage.client_id)
    return shared()
