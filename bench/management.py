"""Management path: ARM calls and wall time per deploy, scale and delete (each with ?wait), and how long after
the simulator reached Succeeded the service answered.

Each call carries its own `x-ms-client-request-id`; the service forwards it to ARM, so the simulator's
request log (scope arm) attributes every ARM call to the operation that made it. The simulator's operation
record has `endTime` = `startTime` + provisioningDelaySeconds (wall clock): the moment it reports Succeeded
to any poll. The reporting delay is the wall-clock time the bench received the service's answer minus that
`endTime` (same machine, same clock). With ARM's Retry-After of 1 s the service polls once a second, so the
delay is bounded by the poll interval plus the final GET and the service's own work.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime
from typing import Any

import requests

from .stack import MAIN, Proc, Stack
from .stats import summary_ms

ARM_SCOPE = "https://management.azure.com"


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _call(session: requests.Session, host: Proc, method: str, path: str, request_id: str, **kwargs: Any) -> Any:
    started = time.perf_counter()
    response = session.request(
        method,
        f"{host.url}/api{path}",
        headers={"x-ms-client-request-id": request_id, "Content-Type": "application/json"},
        timeout=90,
        **kwargs,
    )
    return response, time.perf_counter() - started, time.time()


def _arm_calls(stack: Stack, request_id: str) -> Counter[str]:
    calls: Counter[str] = Counter()
    for record in stack.control.requests("arm"):
        if record["clientRequestId"] == request_id:
            path = record["path"]
            kind = "operationStatuses" if "/operationStatuses/" in path else "skus" if path.endswith("/skus") else ""
            calls[f"{record['method']} {kind}".strip()] += 1
    return calls


def _operation_end(stack: Stack, deployment: str, kind: str) -> float | None:
    operations = [
        op
        for op in stack.control.state()["operations"]
        if op["deployment"] == deployment.lower() and op["kind"] == kind
    ]
    if not operations:
        return None
    latest = max(operations, key=lambda op: op["startTime"])
    return _epoch(latest["endTime"]) if latest.get("endTime") else None


def run(stack: Stack, host: Proc, cycles: int, reads: int) -> dict[str, Any]:
    stack.configure(identityLatencyMs=0, dataPlaneLatencyMs=0)
    provisioning = stack.control.get_config()["provisioningDelaySeconds"]
    retry_after = stack.control.get_config()["retryAfterSeconds"]
    session = requests.Session()
    operations: dict[str, list[dict[str, Any]]] = {"deploy": [], "scale": [], "delete": []}
    stack.control.clear_requests()
    # The first call pays for the ARM token; it is counted apart from the per-operation figures.
    first, first_seconds, _ = _call(session, host, "GET", "/deployments", "bench-first-list")
    first_tokens = stack.control.stats()["tokenRequests"].get(ARM_SCOPE, 0)
    model = MAIN.models[0]
    steps = (
        ("deploy", "create", "PUT", {"model": model, "sku": {"name": "Standard", "capacity": 1}}, 201),
        ("scale", "patch", "PATCH", {"capacity": 2}, 200),
        ("delete", "delete", "DELETE", None, 204),
    )
    for cycle in range(cycles):
        name = f"bench-{cycle}-{int(time.time())}"
        for label, kind, method, body, expected in steps:
            request_id = f"bench-{label}-{cycle}"
            kwargs = {"json": body} if body is not None else {}
            response, seconds, received = _call(
                session, host, method, f"/deployments/{name}?wait=60", request_id, **kwargs
            )
            end = _operation_end(stack, name, kind)
            calls = _arm_calls(stack, request_id)
            operations[label].append(
                {
                    "status": response.status_code,
                    "ok": response.status_code == expected,
                    "seconds": seconds,
                    "arm_calls": sum(calls.values()),
                    "arm_calls_by_kind": dict(calls),
                    "reporting_delay_s": received - end if end is not None else None,
                }
            )
    read_timings: dict[str, list[float]] = {"list": [], "get": []}
    read_calls: dict[str, list[int]] = {"list": [], "get": []}
    for index in range(reads):
        for label, path in (("list", "/deployments"), ("get", "/deployments/vision")):
            request_id = f"bench-{label}-{index}"
            response, seconds, _ = _call(session, host, "GET", path, request_id)
            if response.status_code == 200:
                read_timings[label].append(seconds)
            read_calls[label].append(sum(_arm_calls(stack, request_id).values()))
    tokens = stack.control.stats()["tokenRequests"].get(ARM_SCOPE, 0)
    session.close()

    summary: dict[str, Any] = {
        "provisioning_delay_s": provisioning,
        "retry_after_s": retry_after,
        "cycles": cycles,
        "first_call": {"status": first.status_code, "seconds": first_seconds, "arm_token_requests": first_tokens},
        "arm_token_requests_total": tokens,
        "operations": {},
        "reads": {},
    }
    for label, done in operations.items():
        delays = [op["reporting_delay_s"] for op in done if op["reporting_delay_s"] is not None]
        by_kind: Counter[str] = Counter()
        for op in done:
            by_kind.update(op["arm_calls_by_kind"])
        summary["operations"][label] = {
            "n": len(done),
            "failures": sum(1 for op in done if not op["ok"]),
            "statuses": sorted({op["status"] for op in done}),
            "wall": summary_ms([op["seconds"] for op in done]),
            "arm_calls_median": sorted(op["arm_calls"] for op in done)[len(done) // 2] if done else 0,
            "arm_calls_by_kind_per_op": {k: v / len(done) for k, v in by_kind.items()} if done else {},
            "reporting_delay": summary_ms(delays),
            "raw": done,
        }
    for label in ("list", "get"):
        calls = read_calls[label]
        summary["reads"][label] = {
            "wall": summary_ms(read_timings[label]),
            "arm_calls_median": sorted(calls)[len(calls) // 2] if calls else 0,
        }
    return summary
