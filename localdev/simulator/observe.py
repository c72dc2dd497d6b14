"""What tests observe: a log of identity/ARM/data-plane requests and counters (token requests, TCP connections)."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

MAX_LOGGED_REQUESTS = 10_000  # bounded so a long-running dev simulator does not grow forever
LOG_SCOPES = ("arm", "identity", "dataplane", "entra", "other")
MAX_LOGGED_STRING = 4_096


@dataclass
class RequestRecord:
    seq: int
    time: float  # epoch seconds, so tests can measure gaps between a client's retries
    scope: str
    method: str
    path: str
    query: dict[str, str]
    status: int
    client_request_id: str | None
    correlation_id: str | None
    body: Any
    fault: str | None
    # The tenants of the bearer tokens sent (never the tokens): Authorization, and each auxiliary header's tokens.
    token_tenant: str | None = None
    auxiliary_tenants: list[list[str | None]] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "scope": self.scope,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "clientRequestId": self.client_request_id,
            "correlationId": self.correlation_id,
            "body": self.body,
            "fault": self.fault,
            "tokenTenant": self.token_tenant,
            "auxiliaryTenants": self.auxiliary_tenants or [],
        }


def parse_logged_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def elide_long_strings(value: Any) -> Any:
    """Long strings (base64 images, mostly) replaced by their length and hash.

    Keeps a log of 30 MB image requests small, while a test can still check that an image arrived
    intact by comparing the hash.
    """
    if isinstance(value, str) and len(value) > MAX_LOGGED_STRING:
        digest = hashlib.sha256(value.encode()).hexdigest()
        return f"<elided {len(value)} chars sha256={digest}>"
    if isinstance(value, list):
        return [elide_long_strings(item) for item in value]
    if isinstance(value, dict):
        return {key: elide_long_strings(item) for key, item in value.items()}
    return value


@dataclass
class Observer:
    records: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=MAX_LOGGED_REQUESTS))
    token_requests: Counter[str] = field(default_factory=Counter)
    request_counts: Counter[str] = field(default_factory=Counter)
    connections: set[tuple[str, int]] = field(default_factory=set)
    _sequence: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def note_connection(self, client: tuple[str, int] | None) -> None:
        """Each TCP connection has its own client port, so distinct (host, port) pairs count connections."""
        if client is not None:
            self.connections.add(client)

    def note_token_request(self, resource: str | None) -> None:
        if resource:
            self.token_requests[resource] += 1

    def next_seq(self) -> int:
        return next(self._sequence)

    def record(self, entry: RequestRecord) -> None:
        self.records.append(entry)
        self.request_counts[entry.scope] += 1

    def select(self, scope: str | None) -> list[dict[str, Any]]:
        return [record.to_json() for record in self.records if scope is None or record.scope == scope]

    def clear(self) -> None:
        """Log and counters restart together, so 'clear, act, inspect' sees only the act."""
        self.records.clear()
        self.token_requests.clear()
        self.request_counts.clear()
        self.connections.clear()

    def stats(self) -> dict[str, Any]:
        return {
            "tokenRequests": dict(self.token_requests),
            "connections": len(self.connections),
            "requests": {scope: self.request_counts[scope] for scope in LOG_SCOPES},
        }
