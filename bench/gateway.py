"""Gateway overhead (direct to the simulator vs. through the service) and connection/token reuse.

Both sides use the same client: the `openai` SDK's `AsyncAzureOpenAI`, on one asyncio loop in this process.
(a) direct: azure_endpoint = the account's data plane on the simulator, with a token from the simulator's
managed-identity endpoint; (b) gateway: azure_endpoint = the service's `/api`, which calls the same
simulator with its own managed identity.

Each cell (backend latency x concurrency x plain/stream) runs the two sides in alternating blocks,
A B B A A B B A, so both see the same machine over the same stretch of time; each side's latencies are
pooled over its blocks, and its requests/s is its request count over the summed wall time of its blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import openai

from .stack import API_VERSION, DATA_PLANE_SCOPE, Proc, Stack
from .stats import compare

WORDS = "the quick brown fox jumps over the lazy dog"
MESSAGES: list[Any] = [{"role": "user", "content": WORDS}]
EXPECTED = f"echo: {WORDS}"
DEPLOYMENT = "vision"
TIMEOUT = 60.0


@dataclass
class Block:
    latencies: list[float] = field(default_factory=list)
    first_chunk: list[float] = field(default_factory=list)
    errors: int = 0
    wrong: int = 0
    wall: float = 0.0
    error_kinds: dict[str, int] = field(default_factory=dict)


def _http_client() -> Any:
    """The SDK's own default HTTP client, except that idle connections are dropped after 2 s: uvicorn (the
    simulator and the host) closes them after 5 s, and reusing one at that very moment fails the request."""
    import httpx2

    limits = httpx2.Limits(max_connections=1000, max_keepalive_connections=100, keepalive_expiry=2.0)
    return openai.DefaultAsyncHttpx2Client(limits=limits, timeout=TIMEOUT)


def direct_client(stack: Stack) -> openai.AsyncAzureOpenAI:
    return openai.AsyncAzureOpenAI(
        azure_endpoint=stack.data_plane_endpoint(),
        api_version=API_VERSION,
        azure_ad_token=stack.fetch_token(DATA_PLANE_SCOPE),
        max_retries=0,
        http_client=_http_client(),
    )


def gateway_client(host: Proc) -> openai.AsyncAzureOpenAI:
    return openai.AsyncAzureOpenAI(
        azure_endpoint=f"{host.url}/api",
        api_version=API_VERSION,
        api_key="unused",  # the SDK wants one; the service never forwards it  # pragma: allowlist secret
        max_retries=0,
        http_client=_http_client(),
    )


async def one_request(client: openai.AsyncAzureOpenAI, stream: bool, block: Block) -> None:
    started = time.perf_counter()
    try:
        if not stream:
            completion = await client.chat.completions.create(model=DEPLOYMENT, messages=MESSAGES)
            block.latencies.append(time.perf_counter() - started)
            if completion.choices[0].message.content != EXPECTED:
                block.wrong += 1
            return
        first: float | None = None
        pieces: list[str] = []
        chunks = await client.chat.completions.create(model=DEPLOYMENT, messages=MESSAGES, stream=True)
        async for chunk in chunks:
            if first is None:
                first = time.perf_counter()
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
        ended = time.perf_counter()
        block.latencies.append(ended - started)
        block.first_chunk.append((first or ended) - started)
        if "".join(pieces).strip() != EXPECTED:
            block.wrong += 1
    except Exception as error:  # counted, never retried: the SDK has max_retries=0
        block.errors += 1
        cause = error.__cause__ or error.__context__
        kind = f"{type(error).__name__}" + (f" ({type(cause).__name__}: {str(cause)[:80]})" if cause else "")
        block.error_kinds[kind] = block.error_kinds.get(kind, 0) + 1


async def run_block(client: openai.AsyncAzureOpenAI, count: int, concurrency: int, stream: bool) -> Block:
    """`count` requests with `concurrency` in flight (workers pulling from one shared counter)."""
    block = Block()
    remaining = iter(range(count))

    async def worker() -> None:
        for _ in remaining:
            await one_request(client, stream, block)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))
    block.wall = time.perf_counter() - started
    return block


def merge(blocks: list[Block]) -> Block:
    merged = Block()
    for block in blocks:
        merged.latencies += block.latencies
        merged.first_chunk += block.first_chunk
        merged.errors += block.errors
        merged.wrong += block.wrong
        merged.wall += block.wall
        for kind, n in block.error_kinds.items():
            merged.error_kinds[kind] = merged.error_kinds.get(kind, 0) + n
    return merged


ORDER = ("a", "b", "b", "a", "a", "b", "b", "a")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def meter(pids: dict[str, int]) -> Callable[[], dict[str, float]]:
    """CPU seconds so far of each named process, and of this one (the load generator) as "client"."""

    def read() -> dict[str, float]:
        values = {name: cpu_seconds(pid) for name, pid in pids.items()}
        values["client"] = time.process_time()
        return values

    return read


async def run_cell(
    direct: openai.AsyncAzureOpenAI,
    gateway: openai.AsyncAzureOpenAI,
    *,
    per_side: int,
    concurrency: int,
    stream: bool,
    warmup: int,
    cpu: Callable[[], dict[str, float]] | None = None,
) -> dict[str, Any]:
    clients = {"a": direct, "b": gateway}
    for side in ("a", "b"):
        await run_block(clients[side], warmup, concurrency, stream)
    per_block = max(per_side // (len(ORDER) // 2), 1)
    blocks: dict[str, list[Block]] = {"a": [], "b": []}
    used: dict[str, dict[str, float]] = {"a": {}, "b": {}}
    for side in ORDER:
        before = cpu() if cpu else {}
        blocks[side].append(await run_block(clients[side], per_block, concurrency, stream))
        after = cpu() if cpu else {}
        for name in after:
            used[side][name] = used[side].get(name, 0.0) + after[name] - before[name]
    a, b = merge(blocks["a"]), merge(blocks["b"])
    result: dict[str, Any] = {
        "concurrency": concurrency,
        "stream": stream,
        "requests_per_side": per_block * (len(ORDER) // 2),
        "total" if stream else "latency": compare(a.latencies, b.latencies),
        "rps": {
            "direct": len(a.latencies) / a.wall if a.wall else 0,
            "gateway": len(b.latencies) / b.wall if b.wall else 0,
        },
        "cpu_ms_per_request": {
            "direct": {name: v * 1000 / max(len(a.latencies), 1) for name, v in used["a"].items()},
            "gateway": {name: v * 1000 / max(len(b.latencies), 1) for name, v in used["b"].items()},
        },
        "errors": {"direct": a.errors, "gateway": b.errors},
        "wrong_answers": {"direct": a.wrong, "gateway": b.wrong},
        "error_kinds": {"direct": a.error_kinds, "gateway": b.error_kinds},
    }
    if stream:
        result["first_chunk"] = compare(a.first_chunk, b.first_chunk)
    return result


@dataclass(frozen=True)
class Plan:
    concurrencies: tuple[int, ...]
    latencies_ms: tuple[int, ...]
    # requests per side per cell, by (latency_ms, concurrency)
    counts: Callable[[int, int], int]
    warmup: Callable[[int], int]


def full_plan() -> Plan:
    def counts(latency: int, concurrency: int) -> int:
        if concurrency == 1:
            return 400 if latency == 0 else 200
        return 480 if concurrency <= 16 else 768

    return Plan((1, 16, 64), (0, 50), counts, lambda c: max(20, 2 * c))


def quick_plan() -> Plan:
    """A smoke run: every path once, with too few requests for the tails to mean much."""

    def counts(latency: int, concurrency: int) -> int:
        if concurrency == 1:
            return 32 if latency == 0 else 12
        return 48

    return Plan((1, 16), (0, 50), counts, lambda c: max(8, c))


async def overhead_matrix(stack: Stack, host: Proc, plan: Plan, log: Callable[[str], None]) -> list[dict[str, Any]]:
    cells = []
    direct, gateway = direct_client(stack), gateway_client(host)
    cpu = meter({"host": host.pid, "simulator": stack.simulator.pid})
    try:
        for latency in plan.latencies_ms:
            stack.configure(dataPlaneLatencyMs=latency, identityLatencyMs=0, streamChunkDelayMs=0)
            for concurrency in plan.concurrencies:
                for stream in (False, True):
                    started = time.perf_counter()
                    cell = await run_cell(
                        direct,
                        gateway,
                        per_side=plan.counts(latency, concurrency),
                        concurrency=concurrency,
                        stream=stream,
                        warmup=plan.warmup(concurrency),
                        cpu=cpu,
                    )
                    cell["backend_latency_ms"] = latency
                    cells.append(cell)
                    key = "total" if stream else "latency"
                    log(
                        f"  latency {latency:>2} ms  c={concurrency:<3} {'stream' if stream else 'plain ':<6} "
                        f"direct p50 {cell[key]['direct']['p50']:7.2f} ms  "
                        f"gateway p50 {cell[key]['gateway']['p50']:7.2f} ms"
                        f"  rps {cell['rps']['direct']:6.0f} / {cell['rps']['gateway']:6.0f}"
                        f"  errors {cell['errors']['direct']}/{cell['errors']['gateway']}"
                        f"  ({time.perf_counter() - started:.1f} s)"
                    )
    finally:
        await direct.close()
        await gateway.close()
        stack.configure(dataPlaneLatencyMs=0)
    return cells


# Saturation


async def saturation(
    stack: Stack, host: Proc, count: int, concurrency: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """`count` plain and then `count` streamed requests through the gateway at `concurrency`, 50 ms backend,
    each preceded by a pause just over the simulator's 5 s keep-alive (so the host's pooled connections are
    closed by the server when the burst starts): every error counted with the status that answered it."""
    stack.configure(dataPlaneLatencyMs=50, identityLatencyMs=0, streamChunkDelayMs=0)
    client = gateway_client(host)
    runs = []
    try:
        for stream in (False, True):
            await asyncio.sleep(5.2)
            block = await run_block(client, count, concurrency, stream)
            runs.append(
                {
                    "stream": stream,
                    "requests": count,
                    "concurrency": concurrency,
                    "errors": block.errors,
                    "wrong_answers": block.wrong,
                    "error_kinds": block.error_kinds,
                    "rps": len(block.latencies) / block.wall if block.wall else 0,
                }
            )
            log(
                f"  saturation c={concurrency} {'stream' if stream else 'plain '} {count} requests: "
                f"errors {block.errors} {block.error_kinds or ''}  ({block.wall:.1f} s)"
            )
    finally:
        await client.close()
        stack.configure(dataPlaneLatencyMs=0)
    return {"backend_latency_ms": 50, "runs": runs}


# Reuse


async def _mixed_load(client: openai.AsyncAzureOpenAI, count: int, concurrency: int, deadline: float) -> Block:
    """`count` requests (alternating plain and streamed), stopping early at `deadline`."""
    block = Block()
    remaining = iter(range(count))

    async def worker() -> None:
        for index in remaining:
            if time.monotonic() > deadline:
                return
            await one_request(client, index % 2 == 1, block)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    block.wall = time.perf_counter() - started
    return block


async def reuse(stack: Stack, count: int, concurrency: int, name: str) -> dict[str, Any]:
    """A freshly started host, `count` gateway requests from cold: what it asked of the identity endpoint and
    how many TCP connections it opened to the simulator (the simulator's /_sim/stats)."""
    stack.configure(dataPlaneLatencyMs=0, identityLatencyMs=0)
    host = stack.start_service(name)
    try:
        stack.control.clear_requests()  # zeroes the stats too
        client = gateway_client(host)
        try:
            block = await _mixed_load(client, count, concurrency, time.monotonic() + 120)
        finally:
            await client.close()
        stats = stack.control.stats()
    finally:
        stack.stop_child(host)
    done = len(block.latencies)
    per_thousand = 1000 / done if done else 0
    tokens = stats["tokenRequests"]
    return {
        "requests": done,
        "concurrency": concurrency,
        "errors": block.errors,
        "wall_s": block.wall,
        "sim_stats": stats,
        "token_requests": tokens,
        "token_requests_per_1000": {scope: n * per_thousand for scope, n in tokens.items()},
        "connections": stats["connections"],
        "connections_per_1000": stats["connections"] * per_thousand,
    }


async def reuse_warm(stack: Stack, host: Proc, count: int, concurrency: int, idle: float) -> dict[str, Any]:
    """The long-running host: new connections and token calls for `count` requests right after its pool was
    filled, then for `count` more after `idle` seconds without traffic.

    The simulator's `connections` is the number of distinct client (host, port) pairs it has seen since its
    stats were last cleared, so they are cleared once, before the pool is filled, and each phase's new
    connections are the growth of that number (a kept-alive connection seen before does not count again).
    """
    stack.configure(dataPlaneLatencyMs=0, identityLatencyMs=0)
    client = gateway_client(host)
    phases: dict[str, Any] = {}
    try:
        stack.control.clear_requests()
        await _mixed_load(client, 4 * concurrency, concurrency, time.monotonic() + 60)  # fill the pool
        seen = stack.control.stats()
        phases["filling the pool"] = {
            "requests": 4 * concurrency,
            "errors": None,
            "token_requests": sum(seen["tokenRequests"].values()),
            "connections": seen["connections"],
        }
        phase_pauses = [("steady", 0.0)] + ([(f"after {idle:g} s idle", idle)] if idle else [])
        for phase, pause in phase_pauses:
            await asyncio.sleep(pause)
            block = await _mixed_load(client, count, concurrency, time.monotonic() + 120)
            stats = stack.control.stats()
            phases[phase] = {
                "requests": len(block.latencies),
                "errors": block.errors,
                "token_requests": sum(stats["tokenRequests"].values()) - sum(seen["tokenRequests"].values()),
                "connections": stats["connections"] - seen["connections"],
            }
            seen = stats
    finally:
        await client.close()
    return {"concurrency": concurrency, "idle_s": idle, "phases": phases}


async def token_renewal(stack: Stack, *, lifetime: int, seconds: float, concurrency: int) -> dict[str, Any]:
    """Tokens that live `lifetime` s (renewed 300 s before expiry, as the service and MSAL both do): how many
    token-endpoint calls a fresh host makes while serving for `seconds`."""
    stack.configure(tokenLifetimeSeconds=lifetime, dataPlaneLatencyMs=0, identityLatencyMs=0)
    host = stack.start_service("host-renewal")
    try:
        stack.control.clear_requests()
        client = gateway_client(host)
        started = time.monotonic()
        try:
            block = await _mixed_load(client, 1_000_000, concurrency, started + seconds)
        finally:
            await client.close()
        elapsed = time.monotonic() - started
        stats = stack.control.stats()
        identity_log = stack.control.requests("identity")
    finally:
        stack.stop_child(host)
        with contextlib.suppress(Exception):
            stack.configure(tokenLifetimeSeconds=3600)
    usable = max(lifetime - 300, 1)
    return {
        "token_lifetime_s": lifetime,
        "renew_every_s": usable,
        "served_s": elapsed,
        "requests": len(block.latencies),
        "errors": block.errors,
        "token_requests": stats["tokenRequests"].get(DATA_PLANE_SCOPE, 0),
        "expected_at_most": int(elapsed // usable) + 1,
        "token_request_times": [round(r["time"], 3) for r in identity_log],
    }
