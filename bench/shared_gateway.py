"""The shared gateway's costs: the limiter on the gateway path, one limit held by two hosts, failover time.

- `limiter`: the same chat call through a host without limits and a host whose rule applies (counters in a local
  redis-server), alternating blocks A B B A at concurrency 1, in one run; the difference of the medians.
- `limits_two_hosts`: two hosts sharing one Redis, 32 concurrent callers each, against one tokens-per-minute
  rule: the tokens Azure reported for the accepted calls against the limit plus one call's estimate.
- `failover`: a group of two members; the first answers 429: the time from that 429 (the simulator's request
  log) to the next member receiving the call, and the caller's latency of that call against a normal one.

`python -m bench --only limiter,limits_two_hosts,failover --out docs/performance-gateway.md`
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from localdev.redis_server import LocalRedis, start_redis
from localdev.wiring import DEMO_ACCOUNTS

from .stack import API_VERSION, Proc, Stack

SECTIONS = ("limiter", "limits_two_hosts", "failover")
MAIN, EAST = DEMO_ACCOUNTS
EAST_CHAT = {
    "name": "east-chat",
    "model": {"format": "OpenAI", "name": "gpt-4o", "version": "2024-08-06"},
    "sku": {"name": "GlobalStandard", "capacity": 10},
}
BODY = {"messages": [{"role": "user", "content": " ".join(["word"] * 40)}], "max_tokens": 60}
ESTIMATE = 40 * 5 // 4 + 4 + 60  # services.limiter.estimate_tokens(BODY)
ALL = [{"caller": "*", "deployment": "*", "tokensPerMinute": 100_000_000, "requestsPerMinute": 10_000_000}]
GROUPS = {
    "chat": [
        {"account": "main", "deployment": "vision", "priority": 1},
        {"account": "east", "deployment": "east-chat", "priority": 2},
    ]
}


def _url(host: Proc, deployment: str = "vision") -> str:
    return f"{host.url}/api/openai/deployments/{deployment}/chat/completions?api-version={API_VERSION}"


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), 3),
        "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 3),
    }


def limiter_cost(stack: Stack, redis: LocalRedis, per_block: int) -> dict[str, Any]:
    import httpx2

    plain = stack.start_service("host-no-limits")
    limited = stack.start_service("host-limits", INFERENCE_LIMITS=json.dumps(ALL), **redis.settings())
    samples: dict[str, list[float]] = {"without limiter": [], "with limiter (Redis)": []}
    try:
        with httpx2.Client(timeout=30) as client:
            for host in (plain, limited):  # warm both: connections, tokens, Redis scripts
                for _ in range(20):
                    client.post(_url(host), json=BODY).raise_for_status()
            for host in (plain, limited, limited, plain, plain, limited, limited, plain):
                side = "without limiter" if host is plain else "with limiter (Redis)"
                for _ in range(per_block):
                    started = time.perf_counter()
                    answer = client.post(_url(host), json=BODY)
                    samples[side].append((time.perf_counter() - started) * 1000)
                    answer.raise_for_status()
    finally:
        stack.stop_child(plain)
        stack.stop_child(limited)
    out: dict[str, Any] = {side: _ms(values) for side, values in samples.items()}
    out["added_p50_ms"] = round(out["with limiter (Redis)"]["p50"] - out["without limiter"]["p50"], 3)
    out["target_ms"] = 0.3
    return out


async def _burst(url: str, count: int, concurrency: int) -> tuple[list[int], int]:
    import httpx2

    used: list[int] = []
    refused = 0
    queue = list(range(count))

    async def worker(client: Any) -> None:
        nonlocal refused
        while queue:
            queue.pop()
            answer = await client.post(url, json=BODY)
            if answer.status_code == 200:
                used.append(answer.json()["usage"]["total_tokens"])
            elif answer.status_code == 429:
                refused += 1
            else:
                raise RuntimeError(f"unexpected {answer.status_code}: {answer.text[:200]}")

    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx2.AsyncClient(timeout=60, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return used, refused


def limits_two_hosts(stack: Stack, redis: LocalRedis, per_host: int, limit: int) -> dict[str, Any]:
    rule = [{"caller": "*", "deployment": "main/vision", "tokensPerMinute": limit}]
    hosts = [
        stack.start_service(f"host-shared-{n}", INFERENCE_LIMITS=json.dumps(rule), **redis.settings()) for n in (1, 2)
    ]
    try:
        import redis as redis_py

        client = redis_py.Redis(host="127.0.0.1", port=redis.port, password=redis.password)
        client.flushall()
        client.close()

        async def both() -> list[tuple[list[int], int]]:
            return await asyncio.gather(*(_burst(_url(host), per_host, 32) for host in hosts))

        started = time.perf_counter()
        results = asyncio.run(both())
        seconds = time.perf_counter() - started
    finally:
        for host in hosts:
            stack.stop_child(host)
    accepted = sum(sum(used) for used, _ in results)
    return {
        "limit_tokens_per_minute": limit,
        "estimate_per_call": ESTIMATE,
        "calls_per_host": per_host,
        "concurrency_per_host": 32,
        "seconds": round(seconds, 1),
        "accepted_calls": [len(used) for used, _ in results],
        "refused_calls": [refused for _, refused in results],
        "accepted_tokens": accepted,
        "within_limit_plus_one_estimate": accepted <= limit + ESTIMATE,
    }


def failover_time(stack: Stack, repeats: int) -> dict[str, Any]:
    import httpx2

    stack.reset(accounts=(MAIN, replace(EAST, deployments=(EAST_CHAT,))))
    host = stack.start_service("host-groups", INFERENCE_GROUPS=json.dumps(GROUPS))
    gaps, failover_latency, normal_latency = [], [], []
    try:
        with httpx2.Client(timeout=30) as client:
            for _ in range(20):
                client.post(_url(host, "chat"), json=BODY).raise_for_status()
            for _ in range(repeats):
                for _ in range(10):
                    started = time.perf_counter()
                    client.post(_url(host, "chat"), json=BODY).raise_for_status()
                    normal_latency.append((time.perf_counter() - started) * 1000)
                stack.control.clear_requests()
                stack.control.throttle_data_plane(1, path_contains=f"{MAIN.account_name}/openai/deployments/vision/")
                started = time.perf_counter()
                answer = client.post(_url(host, "chat"), json=BODY)
                failover_latency.append((time.perf_counter() - started) * 1000)
                assert answer.headers.get("x-served-by") == "east/east-chat", answer.headers
                log = [r for r in stack.control.requests("dataplane") if r["path"].endswith("/chat/completions")]
                throttled = next(r for r in log if r["status"] == 429)
                served = next(r for r in log if "east-chat" in r["path"])
                gaps.append((served["time"] - throttled["time"]) * 1000)
                time.sleep(1.1)  # the trip (1 s, the shortest) ends before the next round
    finally:
        stack.stop_child(host)
        stack.reset()
    return {
        "first_429_to_next_member_ms": _ms(gaps),
        "caller_latency_with_failover_ms": _ms(failover_latency),
        "caller_latency_normal_ms": _ms(normal_latency),
    }


def run(stack: Stack, wanted: list[str], quick: bool, log: Callable[[str], None]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    redis = start_redis(stack.folder)
    try:
        if "limiter" in wanted:
            out["limiter"] = limiter_cost(stack, redis, 30 if quick else 250)
            log(f"   limiter: +{out['limiter']['added_p50_ms']} ms median")
        if "limits_two_hosts" in wanted:
            out["limits_two_hosts"] = limits_two_hosts(stack, redis, 100 if quick else 600, 5000)
            log(f"   two hosts: {out['limits_two_hosts']['accepted_tokens']} tokens accepted of 5000")
        if "failover" in wanted:
            out["failover"] = failover_time(stack, 2 if quick else 10)
            log(f"   failover: {out['failover']['first_429_to_next_member_ms']['p50']} ms median")
    finally:
        redis.stop()
    return out


def render(results: dict[str, Any]) -> str:
    lines = [
        "# Shared gateway: performance",
        "",
        f"Run {results.get('started_at', '')} ({results.get('mode', '')}), "
        f"{results.get('machine', {}).get('cpus', '?')} CPUs, Python {results.get('machine', {}).get('python', '?')}, "
        f"commit {results.get('machine', {}).get('commit', '?')}. "
        "Loopback: the simulator, redis-server and the hosts share the machine; compare the sides of one run.",
        "Written by `python -m bench --only limiter,limits_two_hosts,failover --out docs/performance-gateway.md`.",
        "",
    ]
    shared = results.get("shared_gateway", {})
    limiter = shared.get("limiter")
    if limiter:
        lines += [
            "## Limiter cost (concurrency 1, blocks A B B A, same run)",
            "",
            "| Side | n | p50 ms | p95 ms |",
            "|---|---|---|---|",
        ]
        for side in ("without limiter", "with limiter (Redis)"):
            row = limiter[side]
            lines.append(f"| {side} | {row['n']} | {row['p50']} | {row['p95']} |")
        met = "met" if limiter["added_p50_ms"] <= limiter["target_ms"] else "missed"
        lines += [
            "",
            f"Added median: **{limiter['added_p50_ms']} ms** (target <= {limiter['target_ms']} ms: {met}).",
            "",
        ]
    two = shared.get("limits_two_hosts")
    if two:
        verdict = "yes" if two["within_limit_plus_one_estimate"] else "NO"
        lines += [
            "## One tokens-per-minute rule, two hosts sharing Redis, 32 concurrent callers each",
            "",
            f"- limit {two['limit_tokens_per_minute']} tokens/minute; estimate per call {two['estimate_per_call']}",
            f"- calls per host {two['calls_per_host']} in {two['seconds']} s; accepted {two['accepted_calls']}, "
            f"refused (429) {two['refused_calls']}",
            f"- tokens Azure reported for the accepted calls: **{two['accepted_tokens']}**; within the limit plus one "
            f"estimate ({two['limit_tokens_per_minute'] + two['estimate_per_call']}): **{verdict}**",
            "",
        ]
    failover = shared.get("failover")
    if failover:
        gap, slow, normal = (
            failover["first_429_to_next_member_ms"],
            failover["caller_latency_with_failover_ms"],
            failover["caller_latency_normal_ms"],
        )
        lines += [
            "## Failover: a member's 429 to the next member serving the call",
            "",
            "| Figure | n | p50 ms | p95 ms |",
            "|---|---|---|---|",
            f"| first 429 to the next member's request (simulator log) | {gap['n']} | {gap['p50']} | {gap['p95']} |",
            f"| caller's latency, call that failed over | {slow['n']} | {slow['p50']} | {slow['p95']} |",
            f"| caller's latency, normal call | {normal['n']} | {normal['p50']} | {normal['p95']} |",
            "",
        ]
    if "error" in shared:
        lines += ["## Error", "", "```", str(shared["error"]), "```", ""]
    return "\n".join(lines)
