"""One change at a time per account in this process: ARM refuses concurrent ones with 409 RequestConflict."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import ConflictError


class KeyedLocks:
    """A lock per key (an account alias), taken with a timeout; a request that cannot get it in time answers
    409 with Retry-After instead of queueing forever behind a long operation."""

    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = timeout_seconds
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        if not lock.acquire(timeout=self._timeout):
            raise ConflictError(
                f"Another change to account '{key}' is still running in this service. Try again when it has finished.",
                headers={"Retry-After": "10"},
            )
        try:
            yield
        finally:
            lock.release()
