"""What a route hands the service layer about one request: its id, the authorized caller, its audit trail."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .audit import AuditTrail
from .audit_store import AuditStore
from .auth import Caller


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    caller: Caller
    audit_store: Callable[[], AuditStore] | None = None  # made only when a mutation asks for its trail

    @property
    def caller_id(self) -> str | None:
        """The id the logs carry for the caller (never a name or a token)."""
        return self.caller.object_id or self.caller.app_id

    def audit(self) -> AuditTrail:
        """The trail this request's mutation is recorded in."""
        if self.audit_store is None:
            raise RuntimeError("no audit store was given for this request")
        return AuditTrail(self.caller, self.request_id, self.audit_store())
