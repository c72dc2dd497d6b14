"""The usage ledger: one Table Storage row per inference call, written off the caller's path, for chargeback.

Rows are buffered in memory and written by a background thread every `USAGE_FLUSH_SECONDS` (2 s by default)
in entity-group transactions of up to 100 rows. The caller never waits on it: a failing or hanging store loses
rows (counted, and logged with the running total) instead of failing or slowing a request, and the buffer is
bounded. The table (`USAGE_TABLE`, default `usage`) lives in the app's own storage account.

Partition key `YYYYMMDDHH-s`: the call's UTC hour and a shard `s` (0-7) from the row's id, so writes spread over
eight partitions an hour (each well under Table Storage's ~2,000 entities per second per partition) and a
period's rows are one contiguous key range. Row key: the time in milliseconds and a random suffix.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("usage")

SHARDS = 8
MAX_BUFFERED = 20_000
BATCH = 100  # entity-group transactions take at most 100 entities of one partition
_BOUNDS: dict[str, Any] = {"retry_total": 1, "retry_backoff_factor": 0.2, "connection_timeout": 3, "read_timeout": 10}


def partition_key(when: datetime, row_id: str) -> str:
    return f"{when:%Y%m%d%H}-{zlib.crc32(row_id.encode()) % SHARDS}"


def entity_of(record: Any, when: datetime | None = None) -> dict[str, Any]:
    """The ledger row of a finished call (services.inference.CallRecord)."""
    when = when or datetime.now(UTC)
    row_id = f"{int(when.timestamp() * 1000):013d}-{uuid.uuid4().hex[:12]}"
    prompt, completion = record.prompt_tokens or 0, record.completion_tokens or 0
    total = record.total_tokens if isinstance(record.total_tokens, int) else prompt + completion
    return {
        "PartitionKey": partition_key(when, row_id),
        "RowKey": row_id,
        "caller": record.caller or "-",
        "account": record.account,
        "deployment": record.deployment,
        "promptTokens": int(prompt),
        "completionTokens": int(completion),
        "totalTokens": int(total),
        "status": int(record.status),
        "requestId": record.request_id or "",
        "servedBy": record.served_by or "",
        "time": when,
    }


class Ledger:
    """Buffered, batched writes of usage rows to one table, by a thread of its own."""

    def __init__(self, client: Any, *, flush_seconds: float = 2.0, max_buffered: int = MAX_BUFFERED) -> None:
        self._client = client
        self.client = client  # also read by GET /usage
        self._flush_seconds = flush_seconds
        self._max_buffered = max_buffered
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._table_ready = False
        self.written = 0
        self.lost = 0
        self._lost_reported = 0

    def add(self, record: Any) -> None:
        """Buffer the row of a finished call (a CallRecord sink: never raises, never blocks on storage)."""
        try:
            row = entity_of(record)
        except Exception:
            log.exception("a usage row could not be made")
            return
        with self._lock:
            if len(self._rows) >= self._max_buffered:
                self.lost += 1
                return
            self._rows.append(row)
            if self._thread is None and not self._stopping:
                self._thread = threading.Thread(target=self._run, name="usage-ledger", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            self.flush()
        self.flush()

    def flush(self) -> None:
        """Write what is buffered; rows of a failed transaction are counted as lost."""
        with self._lock:
            rows, self._rows = self._rows, []
        if rows:
            by_partition: dict[str, list[dict[str, Any]]] = {}
            for row in rows:
                by_partition.setdefault(row["PartitionKey"], []).append(row)
            for partition_rows in by_partition.values():
                for start in range(0, len(partition_rows), BATCH):
                    self._write(partition_rows[start : start + BATCH])
        if self.lost != self._lost_reported:
            log.error(
                "Usage ledger: %d rows lost so far (the table %s could not be written, or the buffer was full); "
                "the calls themselves were answered.",
                self.lost,
                getattr(self._client, "table_name", "usage"),
            )
            self._lost_reported = self.lost

    def _write(self, rows: list[dict[str, Any]]) -> None:
        try:
            if not self._table_ready:
                from azure.core.exceptions import ResourceExistsError

                with contextlib.suppress(ResourceExistsError):
                    self._client.create_table()
                self._table_ready = True
            self._client.submit_transaction([("upsert", row) for row in rows])
            self.written += len(rows)
        except Exception as error:
            with self._lock:
                self.lost += len(rows)
            log.warning("Usage ledger write of %d rows failed: %s", len(rows), type(error).__name__)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the writer after one last flush (bounded by `timeout`)."""
        self._stopping = True
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        else:
            self.flush()
        closer = getattr(self._client, "close", None)
        if callable(closer):
            closer()


def usage_table_client(settings: Any, credential: Callable[[], Any]) -> Any:
    """A TableClient for the usage table in the app's storage (as the audit trail finds it), or None."""
    storage, table = settings.storage, settings.usage_table
    if storage.connection_string:
        from azure.data.tables import TableClient

        return TableClient.from_connection_string(storage.connection_string, table_name=table, **_BOUNDS)
    endpoint = storage.table_service_uri
    if not endpoint and storage.account_name:
        endpoint = f"https://{storage.account_name}.table.core.windows.net"
    if not endpoint:
        return None
    from azure.data.tables import TableClient

    chosen = credential()
    if storage.client_id and (storage.credential or "").strip().lower() == "managedidentity":
        from azure.identity import ManagedIdentityCredential

        chosen = ManagedIdentityCredential(client_id=storage.client_id)
    return TableClient(endpoint, table_name=table, credential=chosen, **_BOUNDS)
