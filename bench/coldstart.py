"""Cold start: from process start to the first successful answer, on the local host, against a floor.

Each run starts a new process on a port picked just before, then polls it (a new loopback connection every
5 ms until one is accepted, then the request, repeated until it answers 200), bounded at 60 s. Three kinds,
interleaved run by run: the floor (`bench.floor_host`: a one-route app on the same Functions extension
served by the same local host code), the service answering `GET /api/deployments` (ARM token + ARM list),
and the service answering a chat completion (data-plane token + connection pool + simulator); each run then
sends the same request once more (the warm figure the first one is compared with). Also
`python -X importtime -c "import function_app"`.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from localdev.wiring import PROJECT_ROOT, stop

from .stack import API_VERSION, Stack, free_port
from .stats import percentile

CHAT_BODY = json.dumps({"messages": [{"role": "user", "content": "hello"}]}).encode()
KINDS: dict[str, tuple[list[str], str, str, bytes | None]] = {
    "floor": (["-m", "bench.floor_host"], "GET", "/api/ping", None),
    "management": (["-m", "localdev.host", "--settings", os.devnull], "GET", "/api/deployments", None),
    "chat": (
        ["-m", "localdev.host", "--settings", os.devnull],
        "POST",
        f"/api/openai/deployments/vision/chat/completions?api-version={API_VERSION}",
        CHAT_BODY,
    ),
}


def _first_answer(
    port: int, method: str, path: str, body: bytes | None, process: subprocess.Popen[bytes]
) -> dict[str, Any]:
    """Seconds (from now) until the port accepts, and until the request answers 200."""
    started = time.perf_counter()
    deadline = started + 60
    listening: float | None = None
    attempts = 0
    while time.perf_counter() < deadline and process.poll() is None:
        attempts += 1
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.connect()
        except OSError:
            connection.close()
            time.sleep(0.005)
            continue
        if listening is None:
            listening = time.perf_counter()
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            sent = time.perf_counter()
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                answered = time.perf_counter()
                return {
                    "listening": listening - started,
                    "answered": answered - started,
                    "attempts": attempts,
                    "first_request": answered - sent,
                    "later_request": _timed_request(port, method, path, body),
                }
        except (OSError, http.client.HTTPException):
            pass
        finally:
            connection.close()
        time.sleep(0.005)
    raise RuntimeError(f"no 200 from {method} {path} within 60 s (process exit code {process.poll()})")


def _timed_request(port: int, method: str, path: str, body: bytes | None) -> float:
    """Seconds for one more request on a new connection, as the first one was sent: the warm figure."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.connect()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        sent = time.perf_counter()
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return time.perf_counter() - sent
    finally:
        connection.close()


def start_once(stack: Stack, kind: str, log_path: Path) -> dict[str, Any]:
    arguments, method, path, body = KINDS[kind]
    port = free_port()
    command = [sys.executable, *arguments, "--port", str(port)]
    with open(log_path, "ab") as output:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=stack.environment(), stdout=output, stderr=output)
    try:
        spawn = time.perf_counter() - started
        timing = _first_answer(port, method, path, body, process)
    finally:
        stop(process)
    return {
        "listening_s": timing["listening"] + spawn,
        "first_ok_s": timing["answered"] + spawn,
        "first_request_s": timing["first_request"],
        "later_request_s": timing["later_request"],
    }


def run(stack: Stack, runs: int) -> dict[str, Any]:
    stack.configure(identityLatencyMs=0, dataPlaneLatencyMs=0)
    samples: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
    order = list(KINDS)
    for index in range(runs):
        rotated = order[index % len(order) :] + order[: index % len(order)]
        for kind in rotated:
            samples[kind].append(start_once(stack, kind, stack.folder / f"coldstart-{kind}.log"))
    result: dict[str, Any] = {"runs": runs, "kinds": {}}
    for kind, done in samples.items():
        first = [s["first_ok_s"] for s in done]
        listening = [s["listening_s"] for s in done]
        result["kinds"][kind] = {
            "first_ok_median_s": percentile(first, 50),
            "listening_median_s": percentile(listening, 50),
            "first_request_median_s": percentile([s["first_ok_s"] - s["listening_s"] for s in done], 50),
            "first_ok_s": first,
            "listening_s": listening,
            # The request that answered 200 first, timed alone, and the same request sent right after it.
            "first_200_request_median_s": percentile([s["first_request_s"] for s in done], 50),
            "later_request_median_s": percentile([s["later_request_s"] for s in done], 50),
        }
        row = result["kinds"][kind]
        row["first_to_warm_ratio"] = row["first_200_request_median_s"] / row["later_request_median_s"]
    floor = result["kinds"]["floor"]["first_ok_median_s"]
    for kind in ("management", "chat"):
        result["kinds"][kind]["ratio_to_floor"] = result["kinds"][kind]["first_ok_median_s"] / floor
    return result


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S.*)$")


def _importtime(stack: Stack, statement: str) -> tuple[list[dict[str, Any]], float, int]:
    """`python -X importtime -c <statement>`: every entry in import order, the wall time, the exit code."""
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        cwd=PROJECT_ROOT,
        env=stack.environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    wall = time.perf_counter() - started
    entries = []
    for line in completed.stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            entries.append(
                {
                    "module": match.group(4).strip(),
                    "self_ms": int(match.group(1)) / 1000,
                    "cumulative_ms": int(match.group(2)) / 1000,
                    "depth": (len(match.group(3)) - 1) // 2,
                }
            )
    return entries, wall, completed.returncode


def import_times(stack: Stack, statement: str, top: int = 10) -> dict[str, Any]:
    """The `top` entries by cumulative time, the top-level imports in order, and the wall time."""
    entries, wall, code = _importtime(stack, statement)
    ranked = sorted(entries, key=lambda entry: entry["cumulative_ms"], reverse=True)
    return {
        "statement": statement,
        "exit_code": code,
        "wall_s": wall,
        "modules": len(entries),
        "top": ranked[:top],
        "top_level": [entry for entry in entries if entry["depth"] == 0],
        "_names": {entry["module"]: entry["self_ms"] for entry in entries},
    }


def added_modules(service: dict[str, Any], floor: dict[str, Any], top: int = 10) -> dict[str, Any]:
    """Modules the service imports at start-up that the floor does not, by their own (self) import time."""
    extra = {name: ms for name, ms in service["_names"].items() if name not in floor["_names"]}
    ranked = sorted(extra.items(), key=lambda item: item[1], reverse=True)
    return {
        "count": len(extra),
        "self_ms_total": sum(extra.values()),
        "top": [{"module": name, "self_ms": ms} for name, ms in ranked[:top]],
    }
