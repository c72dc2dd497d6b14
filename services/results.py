"""What service functions answer besides plain JSON: a mutation's outcome, and an upstream answer to relay.

Neutral ground: the deployment service, the fine-tuning flow, the inference gateway and the routes all use
these types, and none of them needs to import another for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

Outcome = Literal["created", "updated", "unchanged", "accepted", "deleted"]
_STATUS: dict[str, int] = {"created": 201, "updated": 200, "unchanged": 200, "accepted": 202, "deleted": 204}


@dataclass(frozen=True)
class OperationResult:
    """What a mutation came to. `location` is the path (under the route prefix) to poll while accepted."""

    outcome: Outcome
    resource: dict[str, Any] | None = None
    location: str | None = None
    retry_after: int | None = None
    correlation_id: str | None = None

    @property
    def status(self) -> int:
        return _STATUS[self.outcome]


@dataclass
class ProxyResponse:
    """An upstream answer to relay: a whole body, or a stream of SSE bytes."""

    status: int
    headers: dict[str, str]
    body: bytes | None = None
    stream: AsyncIterator[bytes] | None = None
    # Releases what a stream holds upstream; the route calls it when the answer ends, however it ends
    # (a caller gone before the first chunk never runs the stream's own clean-up). Safe to call twice.
    close: Callable[[], Awaitable[None]] | None = None
