"""A scripted HTTP transport for unit tests: a requests adapter answering from a handler, recording calls.

This is the HTTP boundary: the service code and `requests` run unmodified above it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import BaseAdapter

from services.arm import ArmClient, RetryPolicy
from services.settings import ArmTuning

ARM = "https://management.example.test"


@dataclass
class Call:
    method: str
    url: str
    headers: dict[str, str]
    body: Any

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.url).query)


Reply = tuple[int, dict[str, str], Any]


@dataclass
class ScriptedTransport(BaseAdapter):
    handler: Callable[[Call], Reply]
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        body = json.loads(request.body) if request.body else None
        call = Call(str(request.method), str(request.url), dict(request.headers), body)
        self.calls.append(call)
        status, headers, payload = self.handler(call)
        response = requests.Response()
        response.status_code = status
        response.headers.update(headers)
        response._content = b"" if payload is None else json.dumps(payload).encode()
        response.url = str(request.url)
        response.request = request
        return response

    def close(self) -> None:
        pass


def queue(*replies: Reply) -> Callable[[Call], Reply]:
    """A handler answering the given replies in order (the last one repeats)."""
    pending = list(replies)

    def handler(_: Call) -> Reply:
        return pending.pop(0) if len(pending) > 1 else pending[0]

    return handler


class FakeClock:
    """Time that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def make_client(
    handler: Callable[[Call], Reply], *, tuning: ArmTuning | None = None, clock: FakeClock | None = None
) -> tuple[ArmClient, ScriptedTransport, FakeClock]:
    transport = ScriptedTransport(handler)
    session = requests.Session()
    session.mount("https://", transport)
    clock = clock or FakeClock()
    tuning = tuning or ArmTuning(conflict_retry_seconds=30, poll_interval_seconds=2)
    retry = RetryPolicy(
        total=tuning.retry_total,
        backoff=tuning.retry_backoff_seconds,
        budget=tuning.retry_budget_seconds,
        jitter=False,
        sleep=clock.sleep,
        clock=clock,
    )
    client = ArmClient(ARM, "2024-10-01", lambda: "token-123", tuning=tuning, session=session, retry=retry)
    return client, transport, clock
