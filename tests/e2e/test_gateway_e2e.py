"""The shared gateway end to end: a real redis-server, two host processes sharing it, Azurite for the usage ledger,
the simulator behind them (its faults throttle, fail or cut one deployment).

Limits hold across both hosts; quotas refuse until the period ends; remaining headers count down; Redis stopped
behaves as LIMITS_WHEN_STORE_DOWN says and says so; ledger rows match the usage the simulator reported, and a
failing table never fails a call; GET /api/usage sums them; failover happens before the first byte only, and the
simulator's request log counts every upstream call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from localdev.redis_server import LocalRedis, start_redis
from localdev.simulator.control_client import SimulatorControl
from localdev.wiring import DEMO_ACCOUNTS, simulator_config, stop
from services.auth import encode_principal
from tests.e2e.conftest import BASE_CONFIG, Api, Stack

MAIN, EAST = DEMO_ACCOUNTS
EAST_CHAT = {
    "name": "east-chat",
    "model": {"format": "OpenAI", "name": "gpt-4o", "version": "2024-08-06"},
    "sku": {"name": "GlobalStandard", "capacity": 10},
}
CONFIG = {**BASE_CONFIG, **simulator_config((MAIN, replace(EAST, deployments=(EAST_CHAT,))))}
TEAM_A, TEAM_B, TEAM_C, TEAM_D = (f"0000000{n}-aaaa-4aaa-8aaa-00000000000{n}" for n in range(1, 5))
LIMITS = [
    {"caller": TEAM_A, "deployment": "main/vision", "tokensPerMinute": 300},
    {"caller": TEAM_B, "deployment": "main/*", "tokensPerMinute": 5000, "requestsPerMinute": 5},
    {"caller": TEAM_C, "deployment": "*", "tokenQuota": {"tokens": 150, "period": "Hourly"}},
]
GROUPS = {
    "chat": [
        {"account": "main", "deployment": "vision", "priority": 1},
        {"account": "east", "deployment": "east-chat", "priority": 2},
    ]
}
MAIN_CHAT = f"{MAIN.account_name}/openai/deployments/vision/chat"
ENTRA = {"AUTH_MODE": "entra", "WEBSITE_AUTH_ENABLED": "True"}
SHARED = {
    **ENTRA,
    "INFERENCE_LIMITS": json.dumps(LIMITS),
    "INFERENCE_GROUPS": json.dumps(GROUPS),
    "USAGE_FLUSH_SECONDS": "0.2",
}
HI = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}  # estimate 24 tokens, uses 3


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def hosts(stack: Stack, redis_server: LocalRedis) -> Iterator[tuple[Api, Api]]:
    """Two instances of the app sharing one Redis (and one Azurite, as instances share the app's storage)."""
    first = stack.start_host(**SHARED, **redis_server.settings())
    second = stack.start_host(**SHARED, **redis_server.settings())
    try:
        yield first, second
    finally:
        for process in stack.hosts[-2:]:
            stop(process)


@pytest.fixture
def gsim(sim: SimulatorControl, redis_server: LocalRedis) -> SimulatorControl:
    """The simulator with a copy of the model in each region, and Redis emptied (counters and trips)."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=redis_server.port, password=redis_server.password)
    client.flushall()
    client.close()
    sim.set_config(CONFIG)
    return sim


def who(object_id: str, *roles: str) -> dict[str, str]:
    return {"X-MS-CLIENT-PRINCIPAL": encode_principal(object_id=object_id, roles=list(roles or ["Inference.Invoke"]))}


def chat(api: Api, deployment: str, body: dict[str, Any] | None = None, **headers: str) -> requests.Response:
    return api.call(
        "POST",
        f"/openai/deployments/{deployment}/chat/completions",
        params={"api-version": "2024-10-21"},
        json=body or HI,
        headers=headers,
    )


def chat_calls(sim: SimulatorControl) -> list[str]:
    """The chat calls that reached the simulator, as account/deployment."""
    calls = [r for r in sim.requests("dataplane") if r["path"].endswith("/chat/completions")]
    return ["/".join(r["path"].split("/")[2:3] + r["path"].split("/")[5:6]) for r in calls]


def test_a_per_minute_limit_holds_across_two_hosts(hosts: tuple[Api, Api], gsim: SimulatorControl) -> None:
    def one(api: Api) -> tuple[int, int, requests.Response]:
        response = requests.post(  # a connection per call: 32 callers at once
            f"{api.base_url}/api/openai/deployments/vision/chat/completions?api-version=2024-10-21",
            json=HI,
            headers=who(TEAM_A),
            timeout=60,
        )
        used = response.json()["usage"]["total_tokens"] if response.status_code == 200 else 0
        return response.status_code, used, response

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda n: (n % 2, *one(hosts[n % 2])), range(150)))
    accepted = [used for _, status, used, _ in results if status == 200]
    refused = [response for _, status, _, response in results if status == 429]
    # 150 calls of 3 tokens (450) against 300 a minute: the two instances together stay within the limit plus
    # one call's estimate; with a counter per instance each would have let through up to 300.
    assert sum(accepted) <= 300 + 24, sum(accepted)
    # More calls got through than 300 / 24 estimates: settling gave back what the estimates overstated.
    assert len(accepted) > 300 // 24 and len(accepted) + len(refused) == 150
    assert {host for host, status, *_ in results if status == 200} == {0, 1}
    error = refused[0].json()["error"]
    assert error["code"] == "RateLimitExceeded" and "tokensPerMinute" in error["message"]
    assert int(refused[0].headers["Retry-After"]) >= 1
    assert refused[0].headers["x-ratelimit-remaining-caller-tokens"] == "0"


def test_remaining_headers_count_down_across_hosts(hosts: tuple[Api, Api], gsim: SimulatorControl) -> None:
    seen, used = [], []
    for n in range(5):
        if n == 4:
            time.sleep(1)  # the settles of the first four calls (after each answer, off its path) are done
        response = chat(hosts[n % 2], "vision", **who(TEAM_B))
        assert response.status_code == 200, response.text
        seen.append(
            (
                int(response.headers["x-ratelimit-remaining-caller-requests"]),
                int(response.headers["x-ratelimit-remaining-caller-tokens"]),
            )
        )
        used.append(response.json()["usage"]["total_tokens"])
        # Azure's own headers pass through unchanged beside them.
        assert "x-ratelimit-remaining-tokens" in response.headers
    assert [requests_left for requests_left, _ in seen] == [4, 3, 2, 1, 0]
    # Each call reserves the same estimate (same body); once settled, a call counts what Azure reported instead.
    estimate = 5000 - seen[0][1]
    assert estimate > 0 and all(tokens_left < 5000 for _, tokens_left in seen)
    assert seen[4][1] == 5000 - sum(used[:4]) - estimate
    refused = chat(hosts[1], "vision", **who(TEAM_B))
    assert refused.status_code == 429 and "requestsPerMinute" in refused.json()["error"]["message"]
    assert len(chat_calls(gsim)) == 5  # the refused call never went upstream


def test_the_quota_answers_403_naming_the_period_end(hosts: tuple[Api, Api], gsim: SimulatorControl) -> None:
    words = {"messages": [{"role": "user", "content": " ".join(["word"] * 50)}], "max_tokens": 60}
    statuses = [chat(hosts[n % 2], "vision", words, **who(TEAM_C)) for n in range(4)]
    codes = [response.status_code for response in statuses]
    assert codes[0] == 200 and codes[-1] == 403, codes
    error = statuses[-1].json()["error"]
    end = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:00:00Z")
    assert error["code"] == "QuotaExceeded" and f"until {end}" in error["message"]


def test_the_redis_scripts_count_as_the_memory_store_on_a_test_clock(redis_server: LocalRedis) -> None:
    """Reserve and settle in Lua: the rolling minute's edge, settlement, and a quota refused until the hour ends."""
    from redis.asyncio import Redis

    from services.limit_store import ACCEPTED, OVER_QUOTA, OVER_TOKENS, Ask, MemoryLimitStore, RedisLimitStore

    async def run() -> list[tuple[int, int]]:
        client = Redis(host="127.0.0.1", port=redis_server.port, password=redis_server.password)
        await client.flushall()
        stores = [RedisLimitStore(client), MemoryLimitStore()]
        start = 1_800_000_000.0
        hour = {"quota": 100, "quota_period": "h1", "quota_end_ms": int((start + 3600) * 1000)}
        outcomes = []
        for store in stores:
            first = Ask("edge", int((start + 59.5) * 1000), 80, tokens_per_minute=100)
            steps = [await store.reserve(first)]
            steps.append(await store.reserve(Ask("edge", int((start + 60.5) * 1000), 80, tokens_per_minute=100)))
            await store.settle(first, -70)
            steps.append(await store.reserve(Ask("edge", int((start + 61) * 1000), 80, tokens_per_minute=100)))
            steps.append(await store.reserve(Ask("quota", int((start + 10) * 1000), 100, **hour)))
            steps.append(await store.reserve(Ask("quota", int((start + 3599) * 1000), 1, **hour)))
            following = {"quota": 100, "quota_period": "h2", "quota_end_ms": int((start + 7200) * 1000)}
            steps.append(await store.reserve(Ask("quota", int((start + 3600) * 1000), 1, **following)))
            outcomes.append([(step.status, step.wait_ms) for step in steps])
        await client.aclose()
        assert outcomes[0] == outcomes[1]
        return outcomes[0]

    redis_steps = asyncio.run(run())
    assert [status for status, _ in redis_steps] == [ACCEPTED, OVER_TOKENS, ACCEPTED, ACCEPTED, OVER_QUOTA, ACCEPTED]
    assert redis_steps[4][1] == 1000  # refused until the hour ends, one second later


def test_redis_stopped_follows_limits_when_store_down(
    stack: Stack, redis_server: LocalRedis, gsim: SimulatorControl, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "limits")
    local = stack.configured(**SHARED, **redis_server.settings(), LIMITS_WHEN_STORE_DOWN="local")
    closed = stack.configured(**SHARED, **redis_server.settings(), LIMITS_WHEN_STORE_DOWN="closed")
    assert chat(local, "vision", **who(TEAM_B)).status_code == 200
    redis_server.stop()
    try:
        still = [chat(local, "vision", **who(TEAM_B)) for _ in range(5)]
        # Enforced with the instance's own counters: 5 a minute, counted afresh here.
        assert [r.status_code for r in still] == [200, 200, 200, 200, 200]
        assert chat(local, "vision", **who(TEAM_B)).status_code == 429
        before = len(chat_calls(gsim))
        refused = chat(closed, "vision", **who(TEAM_B))
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "LimitStoreUnavailable"
        assert len(chat_calls(gsim)) == before  # nothing sent upstream
    finally:
        redis_server.start()
    messages = [record.getMessage() for record in caplog.records]
    assert sum("LIMITS_WHEN_STORE_DOWN=local" in m and "cannot be reached" in m for m in messages) == 1, messages
    assert any("LIMITS_WHEN_STORE_DOWN=closed" in m for m in messages)
    deadline = time.monotonic() + 10
    while not any("reachable again" in record.getMessage() for record in caplog.records):
        assert time.monotonic() < deadline, "recovery was not logged"
        chat(local, "east-chat", **who(TEAM_B))  # main/east-chat: under the main/* rule (its 404 does not matter)
        time.sleep(0.3)


def _rows(stack: Stack, request_ids: set[str]) -> list[dict[str, Any]]:
    from azure.data.tables import TableClient

    client = TableClient.from_connection_string(stack.azurite.connection_string, table_name="usage")
    deadline = time.monotonic() + 10
    try:
        while True:
            rows = [dict(row) for row in client.list_entities() if row.get("requestId") in request_ids]
            if len(rows) == len(request_ids) or time.monotonic() > deadline:
                return rows
            time.sleep(0.2)
    finally:
        client.close()


def test_ledger_rows_match_the_usage_azure_reported_and_usage_sums_them(
    stack: Stack, hosts: tuple[Api, Api], gsim: SimulatorControl
) -> None:
    since = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    reported = {}
    for n, body in enumerate([HI, {**HI, "messages": [{"role": "user", "content": "three more words"}]}]):
        response = chat(hosts[n], "vision", body, **who(TEAM_D))
        reported[response.headers["x-request-id"]] = response.json()["usage"]
    streamed = chat(hosts[1], "chat", {**HI, "stream": True, "stream_options": {"include_usage": True}}, **who(TEAM_D))
    usage_event = [line for line in streamed.text.splitlines() if '"usage": {' in line or '"usage":{' in line][-1]
    reported[streamed.headers["x-request-id"]] = json.loads(usage_event.removeprefix("data:"))["usage"]
    rows = {row["requestId"]: row for row in _rows(stack, set(reported))}
    assert set(rows) == set(reported)
    for request_id, usage in reported.items():
        row = rows[request_id]
        assert (row["promptTokens"], row["completionTokens"], row["totalTokens"]) == (
            usage["prompt_tokens"],
            usage["completion_tokens"],
            usage["total_tokens"],
        )
        assert (row["caller"], row["status"], row["account"]) == (TEAM_D, 200, "main")
    assert rows[streamed.headers["x-request-id"]]["deployment"] == "chat"
    assert rows[streamed.headers["x-request-id"]]["servedBy"] == "main/vision"
    summed = hosts[0].call(
        "GET", "/usage", params={"from": since, "groupBy": "caller"}, headers=who(TEAM_D, "Audit.Read")
    )
    assert summed.status_code == 200, summed.text
    team = next(entry for entry in summed.json()["value"] if entry["caller"] == TEAM_D)
    assert team["requests"] == 3
    assert team["totalTokens"] == sum(usage["total_tokens"] for usage in reported.values())
    bad = hosts[0].call("GET", "/usage", params={"groupBy": "team"}, headers=who(TEAM_D, "Audit.Read"))
    assert bad.status_code == 400 and bad.json()["error"]["target"] == "groupBy"


def test_a_failing_usage_table_never_fails_the_call(
    stack: Stack, gsim: SimulatorControl, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "usage")
    dead = (
        "DefaultEndpointsProtocol=http;AccountName=dead;AccountKey=ZGVhZA==;"  # pragma: allowlist secret
        "TableEndpoint=http://127.0.0.1:9/dead;"
    )
    api = stack.configured(AzureWebJobsStorage=dead, USAGE_FLUSH_SECONDS="0.1")
    started = time.monotonic()
    assert chat(api, "vision").status_code == 200
    assert time.monotonic() - started < 2
    deadline = time.monotonic() + 8
    while not any("rows lost" in record.getMessage() for record in caplog.records):
        assert time.monotonic() < deadline, "the lost row was not logged"
        time.sleep(0.1)


GROUP_ONLY = {"INFERENCE_GROUPS": json.dumps(GROUPS)}


@pytest.mark.parametrize(
    "fault",
    [{"status": 429, "retryAfterMs": 5000}, {"status": 503}, {"drop": "beforeAnswer"}],
    ids=["429", "503", "dropped-connection"],
)
def test_failover_before_the_first_byte(stack: Stack, gsim: SimulatorControl, fault: dict[str, Any]) -> None:
    api = stack.configured(**GROUP_ONLY)  # a context of its own: no trips from other tests
    gsim.add_fault(scope="dataplane", pathContains=MAIN_CHAT, **fault)
    response = chat(api, "chat", {**HI, "stream": True})
    assert response.status_code == 200 and response.text.rstrip().endswith("data: [DONE]")
    assert response.headers["x-served-by"] == "east/east-chat"
    # One retry layer: the throttled member once, the next member once.
    assert chat_calls(gsim) == [f"{MAIN.account_name}/vision", f"{EAST.account_name}/east-chat"]


def test_no_switch_after_the_first_streamed_byte(stack: Stack, gsim: SimulatorControl) -> None:
    api = stack.configured(**GROUP_ONLY)
    gsim.add_fault(scope="dataplane", pathContains=MAIN_CHAT, drop="afterFirstChunk")
    response = chat(api, "chat", {**HI, "stream": True})
    assert response.status_code == 200 and response.headers["x-served-by"] == "main/vision"
    events = [line for line in response.text.splitlines() if line.startswith("data:")]
    assert '"chat.completion.chunk"' in events[0]
    assert "UpstreamStreamBroken" in events[-1] and "data: [DONE]" not in events
    assert chat_calls(gsim) == [f"{MAIN.account_name}/vision"]


def test_all_members_throttled_is_429_with_the_smallest_retry_after(stack: Stack, gsim: SimulatorControl) -> None:
    api = stack.configured(**GROUP_ONLY)
    gsim.add_fault(scope="dataplane", pathContains=MAIN_CHAT, status=429, retryAfterMs=7000)
    gsim.add_fault(scope="dataplane", pathContains="east-chat/chat", status=429, retryAfterMs=3000)
    refused = chat(api, "chat")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "3"
    assert refused.json()["error"]["code"] == "NoMemberAvailable"
    assert len(chat_calls(gsim)) == 2
    assert chat(api, "chat").status_code == 429
    assert len(chat_calls(gsim)) == 2  # both tripped: nothing sent


def test_a_trip_is_shared_by_every_host_through_redis(hosts: tuple[Api, Api], gsim: SimulatorControl) -> None:
    gsim.add_fault(scope="dataplane", pathContains=MAIN_CHAT, status=429, retryAfterMs=5000)
    first = chat(hosts[0], "chat", **who(TEAM_D))
    second = chat(hosts[1], "chat", **who(TEAM_D))
    assert first.headers["x-served-by"] == second.headers["x-served-by"] == "east/east-chat"
    assert chat_calls(gsim) == [f"{MAIN.account_name}/vision", *[f"{EAST.account_name}/east-chat"] * 2]
