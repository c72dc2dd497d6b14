"""`process_image` of the service against the baseline (the original sample's per-request handler).

Latency: one request at a time, service and baseline alternating request by request (S B, B S, ...), each
request a distinct image, with the simulator's identity endpoint answering in 20 ms. Memory: a freshly
started process per app and size, warmed up with three small images, then its peak RSS is reset
(/proc/<pid>/clear_refs) and one image of the size is sent; the peak extra memory is VmHWM after the request
minus VmRSS before it. Concurrency: 8 requests in flight, every image distinct; an answer is wrong when the
sha256 prefix the simulator reports is not the one of the image that was sent.
"""

from __future__ import annotations

import base64
import concurrent.futures
import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from .gateway import cpu_seconds
from .stack import API_VERSION, Proc, Stack, reset_peak, rss_kib
from .stats import summary_ms

KIB = 1024
MIB = 1024 * 1024
JPEG = b"\xff\xd8\xff\xe0"
SIZES = {"100 KB": 100 * KIB, "2 MB": 2 * MIB, "20 MB": 20 * MIB}
INSTRUCTIONS = "Describe this image"


class Images:
    """Distinct JPEG-signed payloads of one size, sharing one random body (cheap to make, distinct hashes)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._body = os.urandom(size - len(JPEG) - 8)
        self._next = 0

    def take(self) -> bytes:
        self._next += 1
        return JPEG + self._next.to_bytes(8, "big") + self._body


def short_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


@dataclass
class Outcome:
    seconds: float
    status: int
    correct: bool
    error: str | None = None


def send(session: requests.Session, proc: Proc, image: bytes) -> Outcome:
    started = time.perf_counter()
    try:
        response = session.post(
            f"{proc.url}/api/process_image", params={"instructions": INSTRUCTIONS}, data=image, timeout=120
        )
    except requests.RequestException as error:
        return Outcome(time.perf_counter() - started, 0, False, type(error).__name__)
    seconds = time.perf_counter() - started
    correct = response.status_code == 200 and f"sha256={short_hash(image)}" in response.text
    return Outcome(seconds, response.status_code, correct, None if response.status_code == 200 else response.text[:200])


def direct_body(image: bytes) -> bytes:
    """The chat request the service sends for an image, built by the bench (for the floor: straight to the
    simulator, no app in between)."""
    url = "data:image/jpeg;base64," + base64.b64encode(image).decode("ascii")
    content = [{"type": "text", "text": INSTRUCTIONS}, {"type": "image_url", "image_url": {"url": url}}]
    return json.dumps({"messages": [{"role": "user", "content": content}], "max_tokens": 1000}).encode()


def send_direct(session: requests.Session, stack: Stack, token: str, image: bytes) -> Outcome:
    body = direct_body(image)  # built before the clock starts
    started = time.perf_counter()
    try:
        response = session.post(
            f"{stack.data_plane_endpoint()}openai/deployments/vision/chat/completions",
            params={"api-version": API_VERSION},
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=120,
        )
    except requests.RequestException as error:
        return Outcome(time.perf_counter() - started, 0, False, type(error).__name__)
    seconds = time.perf_counter() - started
    text = response.json()["choices"][0]["message"]["content"] if response.status_code == 200 else ""
    correct = f"sha256={short_hash(image)}" in text
    return Outcome(seconds, response.status_code, correct, None if correct else response.text[:200])


def latency(stack: Stack, service: Proc, baseline: Proc, counts: dict[str, int]) -> dict[str, Any]:
    """Service, baseline and the direct floor, one request at a time, rotating which goes first."""
    apps = {"service": service, "baseline": baseline}
    names = ("service", "baseline", "direct")
    sessions = {name: requests.Session() for name in names}
    token = stack.fetch_token()
    pids = {"host": service.pid, "baseline": baseline.pid, "simulator": stack.simulator.pid}

    def one(name: str, image: bytes) -> Outcome:
        if name == "direct":
            return send_direct(sessions[name], stack, token, image)
        return send(sessions[name], apps[name], image)

    warm = Images(100 * KIB)
    for name in names:
        for _ in range(3):
            one(name, warm.take())
    results: dict[str, Any] = {}
    for label, size in SIZES.items():
        images = Images(size)
        outcomes: dict[str, list[Outcome]] = {name: [] for name in names}
        cpu: dict[str, dict[str, float]] = {name: {} for name in names}
        token_calls = dict.fromkeys(names, 0)
        for index in range(counts[label]):
            order = names[index % 3 :] + names[: index % 3]
            for name in order:
                image = images.take()
                identity_before = stack.control.stats()["requests"]["identity"]
                before = {proc: cpu_seconds(pid) for proc, pid in pids.items()}
                outcomes[name].append(one(name, image))
                for proc, pid in pids.items():
                    cpu[name][proc] = cpu[name].get(proc, 0.0) + cpu_seconds(pid) - before[proc]
                token_calls[name] += stack.control.stats()["requests"]["identity"] - identity_before
        row: dict[str, Any] = {"bytes": size}
        for name, done in outcomes.items():
            ok = [o.seconds for o in done if o.correct]
            summary = summary_ms(ok)
            row[name] = {
                **summary,
                "failures": sum(1 for o in done if not o.correct),
                "mb_per_s": (size / MIB) / (summary["p50"] / 1000) if ok else 0.0,
                "cpu_ms_per_request": {proc: v * 1000 / max(len(done), 1) for proc, v in cpu[name].items()},
                "token_requests_per_request": token_calls[name] / max(len(done), 1),
            }
        row["speedup"] = row["baseline"]["p50"] / row["service"]["p50"] if row["service"]["p50"] else 0.0
        floor = row["direct"]["p50"]
        above = row["service"]["p50"] - floor
        row["above_floor_ms"] = {"service": above, "baseline": row["baseline"]["p50"] - floor}
        row["speedup_above_floor"] = (row["baseline"]["p50"] - floor) / above if above > 0 else math.inf
        results[label] = row
    for session in sessions.values():
        session.close()
    return results


class RssSampler:
    """VmRSS of a process every millisecond in a background thread: a cross-check of VmHWM."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid).get("VmRSS", 0))
            self._stop.wait(0.001)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)


def peak_memory(stack: Stack, start: Callable[[str], Proc], app: str, sizes: tuple[str, ...]) -> dict[str, Any]:
    """Per size, in a fresh process: the peak RSS above the pre-request RSS while serving one image."""
    results: dict[str, Any] = {}
    for label in sizes:
        size = SIZES[label]
        proc = start(f"{app}-memory-{label.replace(' ', '')}")
        try:
            session = requests.Session()
            warm = Images(100 * KIB)
            for _ in range(3):
                send(session, proc, warm.take())
            image = Images(size).take()
            time.sleep(0.2)
            peak_reset = reset_peak(proc.pid)
            before = rss_kib(proc.pid)
            with RssSampler(proc.pid) as sampler:
                outcome = send(session, proc, image)
            after = rss_kib(proc.pid)
            session.close()
        finally:
            stack.stop_child(proc)
        peak = after["VmHWM"] if peak_reset else sampler.peak
        extra = max(peak - before["VmRSS"], 0) * KIB
        results[label] = {
            "bytes": size,
            "ok": outcome.correct,
            "rss_before_mib": before["VmRSS"] / KIB,
            "peak_mib": peak / KIB,
            "sampled_peak_mib": sampler.peak / KIB,
            "extra_bytes": extra,
            "extra_ratio": extra / size,
            "peak_source": "VmHWM after clear_refs" if peak_reset else "1 ms VmRSS sampling",
        }
    return results


def concurrency(service: Proc, baseline: Proc, count: int, size: int, workers: int = 8) -> dict[str, Any]:
    """`count` distinct images per app, `workers` in flight, the apps one after the other."""
    results: dict[str, Any] = {}
    for name, proc in (("service", service), ("baseline", baseline)):
        images = Images(size)
        payloads = [images.take() for _ in range(count)]
        sessions = threading.local()

        def call(image: bytes, proc: Proc = proc, sessions: threading.local = sessions) -> Outcome:
            session = getattr(sessions, "session", None)
            if session is None:
                session = sessions.session = requests.Session()
            return send(session, proc, image)

        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            outcomes = list(pool.map(call, payloads))
        wall = time.perf_counter() - started
        statuses: dict[str, int] = {}
        for outcome in outcomes:
            statuses[str(outcome.status)] = statuses.get(str(outcome.status), 0) + 1
        results[name] = {
            "requests": count,
            "workers": workers,
            "bytes": size,
            "failed": sum(1 for o in outcomes if o.status != 200),
            "wrong_answers": sum(1 for o in outcomes if o.status == 200 and not o.correct),
            "statuses": statuses,
            "wall_s": wall,
            "mb_per_s": count * size / MIB / wall,
            "latency": summary_ms([o.seconds for o in outcomes]),
            "sample_errors": sorted({o.error for o in outcomes if o.error})[:3],
        }
    return results
