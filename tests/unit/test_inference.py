"""Inference proxy pieces: allow-list, api-version, header pass-through, SSE relay with usage capture."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from services.errors import NotFound, ServiceError, ValidationError
from services.identity import TokenProvider
from services.inference import CallRecord, InferenceGateway, StreamEnd, passed_headers, relay_events
from services.settings import load_settings

SUB = "11111111-1111-1111-1111-111111111111"


def gateway(allowed: list[str]) -> InferenceGateway:
    accounts = {
        "main": {
            "subscriptionId": SUB,
            "resourceGroup": "rg",
            "accountName": "aoai",
            "endpoint": "https://a.openai.azure.com/",
            "inferenceDeployments": allowed,
        }
    }
    token = TokenProvider("https://cognitiveservices.azure.com/.default", credential=object())  # type: ignore[arg-type]
    return InferenceGateway(load_settings({"AZURE_OPENAI_ACCOUNTS": json.dumps(accounts)}), lambda _account: token)


def test_allow_list() -> None:
    assert gateway(["*"]).allowed_account(None, "anything").alias == "main"
    assert gateway(["chat"]).allowed_account(None, "chat").alias == "main"
    with pytest.raises(ServiceError) as raised:
        gateway(["chat"]).allowed_account(None, "other")
    assert (raised.value.status, raised.value.code) == (403, "DeploymentNotAllowed")
    with pytest.raises(ServiceError):
        gateway([]).allowed_account(None, "chat")


def test_api_version() -> None:
    g = gateway(["*"])
    with pytest.raises(NotFound) as missing:  # Azure OpenAI answers 404 without api-version, and so does the gateway
        g._api_version(None)
    assert missing.value.target == "api-version" and "api-version=2024-10-21" in missing.value.message
    assert g._api_version("2025-04-01-preview") == "2025-04-01-preview"
    with pytest.raises(ValidationError):
        g._api_version("latest")


def test_only_the_headers_clients_rely_on_pass() -> None:
    upstream = {
        "Content-Type": "application/json",
        "retry-after-ms": "250",
        "Retry-After": "1",
        "x-ratelimit-remaining-tokens": "9",
        "apim-request-id": "a",
        "x-request-id": "b",
        "Set-Cookie": "s=1",
        "Content-Length": "10",
        "Transfer-Encoding": "chunked",
        "Server": "x",
    }
    assert passed_headers(upstream) == {
        "content-type": "application/json",
        "retry-after-ms": "250",
        "retry-after": "1",
        "x-ratelimit-remaining-tokens": "9",
        "apim-request-id": "a",
        "x-ms-request-id": "b",  # Azure's x-request-id, renamed: x-request-id is the service's own
    }


def test_client_cache_is_bounded() -> None:
    g = gateway(["*"])
    account = g.settings.account(None)
    first = g.client(account, "2024-01-01")
    for day in range(1, 40):
        g.client(account, f"2025-01-{day:02d}" if day <= 31 else f"2025-02-{day - 31:02d}")
    assert len(g._clients) <= 16
    assert g.client(account, "2024-01-01") is not first  # evicted, made again


class FakeStream:
    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces
        self.closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece

    async def aclose(self) -> None:
        self.closed = True


def events(*chunks: dict[str, object]) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"


def relay(pieces: list[bytes], hide_usage: bool) -> tuple[list[bytes], CallRecord, FakeStream]:
    stream = FakeStream(pieces)
    record = CallRecord("main", "d", "chat.completions", stream=True)

    async def collect() -> list[bytes]:
        return [item async for item in relay_events(stream, record, hide_usage, StreamEnd(stream, record))]

    return asyncio.run(collect()), record, stream


SSE = events(
    {"choices": [{"delta": {"content": "Hel"}}], "usage": None},
    {"choices": [{"delta": {"content": "lo"}}], "usage": None},
    {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}},
)


def test_relay_splits_events_across_arbitrary_pieces_and_hides_unasked_usage() -> None:
    pieces = [SSE[i : i + 7] for i in range(0, len(SSE), 7)]
    out, record, stream = relay(pieces, hide_usage=True)
    assert all(item.endswith(b"\n\n") for item in out)
    assert b"".join(out).count(b"data: ") == 3  # two content chunks and [DONE]; the usage chunk is dropped
    assert out[-1] == b"data: [DONE]\n\n"
    assert (record.prompt_tokens, record.completion_tokens) == (5, 2)
    assert stream.closed


def test_relay_keeps_usage_the_caller_asked_for() -> None:
    out, record, _ = relay([SSE], hide_usage=False)
    assert b"".join(out) == SSE
    assert record.completion_tokens == 2
