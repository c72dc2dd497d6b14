"""A scripted ARM for unit tests: an azure-core transport answering from a handler and recording every call.

The transport is azure-core's own `RequestsTransport` over a session whose adapter answers from the handler, so
the client's whole pipeline, the transport's error mapping (a `requests.ConnectionError` becomes a
`ServiceRequestError`) and its responses run unmodified. Its `sleep` advances a `FakeClock` instead of waiting.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions
from azure.core.pipeline.transport import RequestsTransport
from requests.adapters import BaseAdapter
from urllib3.response import HTTPResponse

from services.arm import ArmClient
from services.settings import ArmTuning

ARM = "https://management.example.test"
SCOPE = "https://management.example.test/.default"
TOKEN = "token-123"


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


@dataclass
class _ScriptedAdapter(BaseAdapter):
    handler: Callable[[Call], Reply]
    calls: list[Call]

    def __post_init__(self) -> None:
        super().__init__()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        body = json.loads(request.body) if request.body else None
        call = Call(str(request.method), str(request.url), dict(request.headers), body)
        self.calls.append(call)
        status, headers, payload = self.handler(call)
        content = b"" if payload is None else json.dumps(payload).encode()
        response = requests.Response()
        response.status_code = status
        response.headers.update(headers)
        response.raw = HTTPResponse(io.BytesIO(content), headers=headers, status=status, preload_content=False)
        response.url = str(request.url)
        response.request = request
        return response

    def close(self) -> None:
        pass


class ScriptedTransport(RequestsTransport):
    """azure-core's requests transport whose network is a handler; waits advance the fake clock."""

    def __init__(self, handler: Callable[[Call], Reply], clock: FakeClock) -> None:
        self.calls: list[Call] = []
        self.clock = clock
        session = requests.Session()
        session.mount("https://", _ScriptedAdapter(handler, self.calls))
        session.mount("http://", _ScriptedAdapter(handler, self.calls))
        super().__init__(session=session)

    def sleep(self, duration: float) -> None:
        self.clock.sleep(duration)


@dataclass
class FakeCredential:
    """A credential as azure-identity's: `get_token_info` (what azure-core prefers) and `get_token`."""

    token: str = TOKEN
    scopes: list[tuple[str, ...]] = field(default_factory=list)

    def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        self.scopes.append(scopes)
        return AccessTokenInfo(self.token, int(time.time()) + 3600)

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


def queue(*replies: Reply) -> Callable[[Call], Reply]:
    """A handler answering the given replies in order (the last one repeats)."""
    pending = list(replies)

    def handler(_: Call) -> Reply:
        return pending.pop(0) if len(pending) > 1 else pending[0]

    return handler


def make_client(
    handler: Callable[[Call], Reply],
    *,
    tuning: ArmTuning | None = None,
    clock: FakeClock | None = None,
    credential: Any = None,
) -> tuple[ArmClient, ScriptedTransport, FakeClock]:
    """The real ArmClient over the scripted transport, its clock a FakeClock, its credential a fake."""
    clock = clock or FakeClock()
    transport = ScriptedTransport(handler, clock)
    tuning = tuning or ArmTuning(conflict_retry_seconds=30, poll_interval_seconds=2)
    client = ArmClient(
        ARM,
        "2024-10-01",
        credential or FakeCredential(),
        SCOPE,
        tuning=tuning,
        transport=transport,
        clock=clock,
    )
    return client, transport, clock
