"""One change to an ARM resource: run under its scope's lock, recorded in the audit trail with its outcome, and
followed to its end (or to the caller's wait) through ARM's long-running operation.

Deployments and serverless endpoints change the same way: the audit record is written first (so a change that
fails half-way is still on record), the change runs holding the lock of its account or project, and the record
then says whether ARM was written, the answer's status and state, and ARM's correlation id.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from requests.structures import CaseInsensitiveDict

from .arm import ArmClient, ArmResponse
from .audit import AuditRecord
from .errors import ServiceError
from .locks import KeyedLocks
from .lro import LongRunningOperation, PollOutcome
from .results import OperationResult, Outcome


class Change(Protocol):
    wrote: bool


C = TypeVar("C", bound=Change)


def run_change(
    locks: KeyedLocks,
    lock: str,
    record: AbstractContextManager[AuditRecord] | None,
    make: Callable[[AuditRecord | None], C],
    step: Callable[[C], OperationResult],
) -> OperationResult:
    """`step(make(entry))` under `lock`; with `record`, the entry completed from what the step did and answered."""
    if record is None:
        with locks.hold(lock):
            return step(make(None))
    with record as entry:
        change = make(entry)
        try:
            with locks.hold(lock):
                result = step(change)
        finally:
            entry.changed = change.wrote
        state = result.resource.get("provisioningState") if result.resource else None
        entry.outcome = {"status": result.status, "provisioningState": state, "code": None}
        entry.arm_correlation_id = result.correlation_id
        return result


@dataclass(frozen=True)
class Follow:
    """How one service follows a change it wrote to the end: the resource's URL and what differs per service."""

    arm: ArmClient
    url: str
    request_id: str | None
    deadline: float
    poll_interval: float
    current: Callable[[], dict[str, Any] | None]  # the resource as ARM has it now; None when gone
    failed: Callable[[PollOutcome, str | None], ServiceError]  # the operation ended Failed or Canceled
    gone: Callable[[str | None], ServiceError]  # succeeded, yet the resource is gone (deleted meanwhile)
    result: Callable[[Outcome, dict[str, Any] | None, str | None, int | None], OperationResult]


def finish(follow: Follow, method: str, response: ArmResponse, done: Outcome) -> OperationResult:
    """Poll ARM's operation until it ends or the caller's wait is over: `done` with the resource, `deleted`, or
    `accepted` (202) with `Retry-After`; a failed operation or a resource deleted meanwhile raises."""
    operation = LongRunningOperation(follow.arm, method, follow.url, response, follow.request_id)
    outcome = operation.poll_until(follow.deadline)
    correlation_id = response.correlation_id
    if outcome.state.lower() in ("failed", "canceled"):
        raise follow.failed(outcome, correlation_id)
    if outcome.terminal:
        if method == "DELETE":
            return OperationResult("deleted", correlation_id=correlation_id)
        if outcome.resource is None:
            raise follow.gone(correlation_id)
        return follow.result(done, outcome.resource, correlation_id, None)
    resource = None  # a DELETE still running answers 202 without a body, whichever request started it
    if method != "DELETE":
        resource = outcome.resource or follow.current()
        if resource is None:
            raise follow.gone(correlation_id)
    retry_after = math.ceil(outcome.retry_after or follow.poll_interval)
    return follow.result("accepted", resource, correlation_id, retry_after)


def follow_running(follow: Follow, method: str, resource: dict[str, Any]) -> OperationResult:
    """An earlier request's change still running: follow the resource itself (its status links are not known)."""
    return finish(follow, method, ArmResponse(202, CaseInsensitiveDict(), resource, follow.url), "unchanged")
