"""Injected faults: answer a matching request with an error status, or delay it, a given number of times."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse

from .errors import arm_error_body, default_error_code

SCOPES = ("arm", "identity", "dataplane", "entra", "any")
UNLIMITED = -1
_FAULT_KEYS = frozenset(
    {
        "scope",
        "method",
        "pathContains",
        "status",
        "code",
        "message",
        "headers",
        "retryAfter",
        "retryAfterMs",
        "delaySeconds",
        "count",
        "drop",
    }
)
# A dropped connection: before any answer byte, or after the first chunk of a streamed answer.
DROPS = ("beforeAnswer", "afterFirstChunk")


class FaultSpecError(ValueError):
    """A fault definition the simulator refuses; the message says which field is wrong."""


@dataclass
class Fault:
    fault_id: str
    scope: str
    method: str | None = None
    path_contains: str | None = None
    status: int | None = None
    code: str | None = None
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    retry_after_ms: int | None = None
    delay_seconds: float = 0.0
    drop: str | None = None
    remaining: int = 1  # UNLIMITED keeps it live until cleared
    hits: int = 0

    @property
    def is_live(self) -> bool:
        return self.remaining != 0

    def matches(self, scope: str, method: str, path: str) -> bool:
        if self.scope not in (scope, "any"):
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        # ARM paths are case-insensitive, so the filter is too.
        return self.path_contains is None or self.path_contains.lower() in path.lower()

    def consume(self) -> None:
        self.hits += 1
        if self.remaining != UNLIMITED:
            self.remaining -= 1

    def response(self, scope: str, default_message: str | None = None) -> JSONResponse:
        """The injected error, in the error shape of the scope the request belongs to.

        `default_message` is the scope's realistic text for this status, used when the fault names none.
        """
        assert self.status is not None
        headers = dict(self.headers)
        if self.retry_after is not None:
            whole = self.retry_after == int(self.retry_after)
            headers["Retry-After"] = str(int(self.retry_after)) if whole else str(self.retry_after)
        if self.retry_after_ms is not None:
            headers["retry-after-ms"] = str(self.retry_after_ms)
        # Azure OpenAI's gateway codes are mostly the bare status ("429"), unlike ARM's named codes.
        code = self.code or (str(self.status) if scope == "dataplane" else default_error_code(self.status))
        message = self.message or default_message or f"Simulated fault {self.fault_id}: {code}."
        if scope == "identity":
            body: dict[str, Any] = {"statusCode": self.status, "message": message}
        elif scope == "dataplane":
            body = {"error": {"code": code, "message": message}}
        else:
            body = arm_error_body(code, message)
        return JSONResponse(body, status_code=self.status, headers=headers)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.fault_id,
            "scope": self.scope,
            "method": self.method,
            "pathContains": self.path_contains,
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "headers": self.headers,
            "retryAfter": self.retry_after,
            "retryAfterMs": self.retry_after_ms,
            "delaySeconds": self.delay_seconds,
            "drop": self.drop,
            "remaining": self.remaining,
            "hits": self.hits,
        }


class FaultRegistry:
    """Faults in insertion order; the first live one matching a request applies to it."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(self, spec: object) -> Fault:
        fault = _parse_fault(spec, f"fault-{next(self._ids)}")
        self._faults.append(fault)
        return fault

    def take(self, scope: str, method: str, path: str) -> Fault | None:
        """The fault that applies to this request, with one of its uses spent."""
        for fault in self._faults:
            if fault.is_live and fault.matches(scope, method, path):
                fault.consume()
                return fault
        return None

    def remove(self, fault_id: str) -> bool:
        before = len(self._faults)
        self._faults = [fault for fault in self._faults if fault.fault_id != fault_id]
        return len(self._faults) != before

    def clear(self) -> None:
        self._faults.clear()

    def to_json(self) -> list[dict[str, Any]]:
        return [fault.to_json() for fault in self._faults]


def _parse_fault(spec: object, fault_id: str) -> Fault:
    if not isinstance(spec, dict):
        raise FaultSpecError("a fault must be a JSON object")
    unknown = sorted(set(spec) - _FAULT_KEYS)
    if unknown:
        raise FaultSpecError(f"unknown key(s) {unknown}; allowed keys are {sorted(_FAULT_KEYS)}")
    scope = spec.get("scope")
    if scope not in SCOPES:
        raise FaultSpecError(f"'scope' must be one of {list(SCOPES)}")
    status = _optional_int(spec, "status")
    if status is not None and not 100 <= status <= 599:
        raise FaultSpecError("'status' must be an HTTP status code (100-599)")
    delay = _optional_number(spec, "delaySeconds") or 0.0
    drop = _optional_str(spec, "drop")
    if drop is not None and (drop not in DROPS or status is not None):
        raise FaultSpecError(f"'drop' must be one of {list(DROPS)}, without 'status'")
    if status is None and delay == 0 and drop is None:
        raise FaultSpecError(
            "a fault needs 'status' (answer with an error), 'delaySeconds' (slow down) or 'drop' (close the connection)"
        )
    count = _optional_int(spec, "count")
    count = 1 if count is None else count
    if count == 0 or count < UNLIMITED:
        raise FaultSpecError("'count' must be a positive integer, or -1 for 'until cleared'")
    headers = spec.get("headers", {})
    if not isinstance(headers, Mapping) or not all(isinstance(value, str) for value in headers.values()):
        raise FaultSpecError("'headers' must be an object of strings")
    return Fault(
        fault_id=fault_id,
        scope=scope,
        method=_optional_str(spec, "method"),
        path_contains=_optional_str(spec, "pathContains"),
        status=status,
        code=_optional_str(spec, "code"),
        message=_optional_str(spec, "message"),
        headers=dict(headers),
        retry_after=_optional_number(spec, "retryAfter"),
        retry_after_ms=_optional_int(spec, "retryAfterMs"),
        delay_seconds=delay,
        drop=drop,
        remaining=count,
    )


def _optional_str(spec: Mapping[str, Any], key: str) -> str | None:
    value = spec.get(key)
    if value is not None and not isinstance(value, str):
        raise FaultSpecError(f"'{key}' must be a string")
    return value


def _optional_int(spec: Mapping[str, Any], key: str) -> int | None:
    value = spec.get(key)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise FaultSpecError(f"'{key}' must be an integer")
    return value


def _optional_number(spec: Mapping[str, Any], key: str) -> float | None:
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise FaultSpecError(f"'{key}' must be a number >= 0")
    return float(value)
