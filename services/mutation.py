"""One change to an ARM resource, run under its scope's lock and recorded in the audit trail with its outcome.

Deployments and serverless endpoints change the same way: the audit record is written first (so a change that
fails half-way is still on record), the change runs holding the lock of its account or project, and the record
then says whether ARM was written, the answer's status and state, and ARM's correlation id.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol, TypeVar

from .audit import AuditRecord
from .locks import KeyedLocks
from .results import OperationResult


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
