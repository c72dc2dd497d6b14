"""The gateway's upstream transport against scripted httpx2 transports: what goes out, retries, limits, errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from services.errors import GatewayTimeout, RelayedError, Throttled, UpstreamUnavailable
from services.identity import TokenProvider
from services.inference import InferenceGateway
from services.settings import load_settings
from services.upstream import SlicedBody, Upstream

SUB = "11111111-1111-1111-1111-111111111111"
CHAT = json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode()
ANSWER = {"choices": [{"message": {"content": "hello"}}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}

Handler = Callable[[httpx2.Request], Any]


class Scripted:
    """A transport answering with `handler`, recording every request and whether it was closed."""

    def __init__(self, handler: Handler) -> None:
        self.requests: list[httpx2.Request] = []
        self.bodies: list[bytes] = []
        self.closed = False
        self._handler = handler

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        self.bodies.append(await request.aread())
        answer = self._handler(request)
        if asyncio.iscoroutine(answer):
            answer = await answer
        if isinstance(answer, BaseException):
            raise answer
        return answer  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        self.closed = True


class Token(TokenProvider):
    def __init__(self) -> None:
        super().__init__("https://cognitiveservices.azure.com/.default", credential=object())  # type: ignore[arg-type]

    async def aget(self) -> str:
        return "service-token"


def make(pooled: Handler, fresh: Handler | None = None, **env: str) -> tuple[InferenceGateway, Scripted, Scripted]:
    accounts = {
        "main": {
            "subscriptionId": SUB,
            "resourceGroup": "rg",
            "accountName": "aoai",
            "endpoint": "https://aoai.openai.azure.com/",
            "inferenceDeployments": ["*"],
        }
    }
    settings = load_settings({"AZURE_OPENAI_ACCOUNTS": json.dumps(accounts), **env})
    first, second = Scripted(pooled), Scripted(fresh or pooled)
    upstream = Upstream(
        pool_size=settings.inference.pool_size,
        timeout_seconds=settings.inference.timeout_seconds,
        transports=lambda size: (first, second),
    )
    return InferenceGateway(settings, lambda _account: Token(), upstream=upstream), first, second


def ok(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, json=ANSWER, headers={"x-request-id": "azure-id", "Set-Cookie": "a=b"})


def chat(gateway: InferenceGateway, body: bytes = CHAT) -> Any:
    return asyncio.run(gateway.chat_completions(None, "gpt", "2024-10-21", body, request_id="rid-1"))


def test_the_request_is_built_from_the_target_with_the_service_token_only() -> None:
    gateway, pooled, _ = make(ok)
    answer = chat(gateway)
    assert answer.status == 200 and json.loads(answer.body) == ANSWER
    assert answer.headers == {"content-type": "application/json", "x-ms-request-id": "azure-id"}
    [request] = pooled.requests
    assert (
        str(request.url)
        == "https://aoai.openai.azure.com/openai/deployments/gpt/chat/completions?api-version=2024-10-21"
    )
    assert request.headers["authorization"] == "Bearer service-token"
    assert request.headers["x-ms-client-request-id"] == "rid-1"
    assert "api-key" not in request.headers
    assert pooled.bodies == [CHAT]  # forwarded as sent
    assert gateway.upstream.active == 0


def test_a_connection_error_before_any_answer_is_retried_once_on_a_fresh_connection() -> None:
    gateway, pooled, fresh = make(lambda r: httpx2.RemoteProtocolError("Server disconnected"), ok)
    assert chat(gateway).status == 200
    assert (len(pooled.requests), len(fresh.requests)) == (1, 1)
    assert fresh.bodies == [CHAT]


def test_two_connection_errors_are_503_with_retry_after() -> None:
    gateway, pooled, fresh = make(lambda r: httpx2.ConnectError("refused"))
    with pytest.raises(UpstreamUnavailable) as raised:
        chat(gateway)
    assert raised.value.status == 503 and raised.value.headers == {"Retry-After": "5"}
    assert (len(pooled.requests), len(fresh.requests)) == (1, 1)
    assert gateway.upstream.active == 0


def test_no_answer_in_time_is_504_and_is_not_retried() -> None:
    gateway, pooled, fresh = make(lambda r: httpx2.ReadTimeout("slow"))
    with pytest.raises(GatewayTimeout):
        chat(gateway)
    assert (len(pooled.requests), len(fresh.requests)) == (1, 0)


def test_a_cheap_429_is_retried_once_and_an_expensive_one_relayed() -> None:
    answers = iter([httpx2.Response(429, json={"error": {}}, headers={"retry-after-ms": "10"}), ok(None)])  # type: ignore[arg-type]
    gateway, pooled, _ = make(lambda r: next(answers))
    assert chat(gateway).status == 200
    assert len(pooled.requests) == 2

    body = {"error": {"code": "429", "message": "later"}}
    gateway, pooled, _ = make(lambda r: httpx2.Response(429, json=body, headers={"retry-after": "30"}))
    answer = chat(gateway)
    assert (answer.status, json.loads(answer.body), answer.headers["retry-after"]) == (429, body, "30")
    assert len(pooled.requests) == 1 and gateway.upstream.active == 0


def test_the_services_own_calls_raise_upstream_errors_as_relayed() -> None:
    gateway, _, _ = make(lambda r: httpx2.Response(404, json={"error": {"code": "NotFound"}}))
    account = gateway.settings.account(None)
    with pytest.raises(RelayedError) as raised:
        asyncio.run(gateway.get_json(account, "/fine_tuning/jobs/x", request_id="r", operation="job"))
    assert raised.value.status == 404 and json.loads(raised.value.body) == {"error": {"code": "NotFound"}}


def test_a_sliced_body_goes_out_whole_with_its_length() -> None:
    gateway, pooled, _ = make(ok)
    pieces = (b'{"a": "', b"x" * 10, b'"}')
    body = SlicedBody(sum(map(len, pieces)), lambda: iter(pieces))
    account = gateway.settings.account(None)
    parsed, record = asyncio.run(
        gateway.completion_json(account, "gpt", body, request_id="r", operation="process_image")
    )
    assert parsed == ANSWER and record.completion_tokens == 1
    assert pooled.bodies == [b"".join(pieces)]
    assert pooled.requests[0].headers["content-length"] == str(body.length)


def test_a_stream_holds_its_place_until_it_is_closed_and_hides_the_usage_it_added() -> None:
    sse = (
        b'data: {"choices": [{"delta": {"content": "hi"}}], "usage": null}\n\n'
        b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}\n\n'
        b"data: [DONE]\n\n"
    )
    gateway, pooled, _ = make(
        lambda r: httpx2.Response(200, content=sse, headers={"content-type": "text/event-stream"})
    )

    async def run() -> tuple[bytes, int, int]:
        answer = await gateway.chat_completions(
            None, "gpt", "2024-10-21", b'{"messages": [], "stream": true}', request_id="r"
        )
        during = gateway.upstream.active
        assert answer.stream is not None
        received = b"".join([piece async for piece in answer.stream])
        return received, during, gateway.upstream.active

    received, during, after = asyncio.run(run())
    assert json.loads(pooled.bodies[0])["stream_options"] == {"include_usage": True}
    assert b'usage": {' not in received and received.endswith(b"data: [DONE]\n\n")
    assert (during, after) == (1, 0)


def test_beyond_the_pool_and_its_queue_calls_are_refused_at_once_with_429() -> None:
    release = asyncio.Event()

    async def slow(request: httpx2.Request) -> httpx2.Response:
        await release.wait()
        return ok(request)

    gateway, pooled, _ = make(slow, INFERENCE_POOL_SIZE="2")

    async def run() -> list[Any]:
        calls = [
            asyncio.create_task(gateway.chat_completions(None, "gpt", "2024-10-21", CHAT, request_id="r"))
            for _ in range(4)
        ]
        await asyncio.sleep(0.05)
        with pytest.raises(Throttled) as raised:
            await gateway.chat_completions(None, "gpt", "2024-10-21", CHAT, request_id="r")
        assert raised.value.status == 429 and raised.value.headers == {"Retry-After": "1"}
        release.set()
        return await asyncio.gather(*calls)

    assert [answer.status for answer in asyncio.run(run())] == [200] * 4
    assert len(pooled.requests) == 4 and gateway.upstream.active == 0


def test_a_pool_wait_that_runs_out_is_429_not_a_timeout() -> None:
    gateway, _, _ = make(lambda r: httpx2.PoolTimeout("busy"))
    with pytest.raises(Throttled) as raised:
        chat(gateway)
    assert raised.value.headers == {"Retry-After": "1"}


def test_aclose_closes_both_transports() -> None:
    gateway, pooled, fresh = make(ok)
    chat(gateway)
    asyncio.run(gateway.aclose())
    assert pooled.closed and fresh.closed


def test_a_path_with_its_own_query_keeps_it_beside_the_api_version() -> None:
    gateway, pooled, _ = make(lambda r: httpx2.Response(200, json={"data": []}))
    account = gateway.settings.account(None)
    asyncio.run(gateway.get_json(account, "/fine_tuning/jobs/j/checkpoints?limit=50", request_id="r", operation="c"))
    assert dict(pooled.requests[0].url.params) == {"limit": "50", "api-version": "2024-10-21"}


def test_a_caller_gone_before_the_first_chunk_releases_the_upstream_slot() -> None:
    """The route's streaming answer releases the upstream side even when the stream never started (a client
    that disconnects at once): otherwise every such caller would keep a pool slot until the process ends."""
    from blueprints.respond import _proxy_response

    def sse(_: httpx2.Request) -> httpx2.Response:
        body = b'data: {"choices":[]}\n\n'
        return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream"})

    gateway, _, _ = make(sse)
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "stream": True}).encode()

    async def disconnected_callers() -> int:
        for _ in range(3):
            relayed = await gateway.chat_completions(None, "d", "2024-10-21", body, request_id="r")
            response = _proxy_response(relayed, "r")

            async def receive() -> dict[str, str]:
                return {"type": "http.disconnect"}

            async def send(_: Any) -> None:
                await asyncio.sleep(0.01)  # the caller is already gone

            await response({"type": "http", "asgi": {"spec_version": "2.3"}}, receive, send)
        return gateway.upstream.active

    assert asyncio.run(disconnected_callers()) == 0
