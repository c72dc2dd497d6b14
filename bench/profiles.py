"""Profiles taken when a target is missed: the host under the load that missed it, sampled with py-spy, and an
allocation trace of the image path's own steps (tracemalloc) when the memory target is missed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import requests

from . import gateway, profiling
from .images import Images
from .stack import Stack

GATEWAY_ROOTS = (
    "respond (blueprints/respond.py)",
    "InferenceGateway.chat_completions (services/inference.py)",
    "InferenceGateway._send (services/inference.py)",
    "Upstream.send (services/upstream.py)",
    "Upstream._attempt (services/upstream.py)",
    "relay_events (services/inference.py)",
)
IMAGE_ROOTS = (
    "respond (blueprints/respond.py)",
    "analyse_image (services/images.py)",
    "InferenceGateway.completion_json (services/inference.py)",
    "Upstream._attempt (services/upstream.py)",
)


@contextlib.contextmanager
def pinned(stack: Stack, host_pid: int) -> Iterator[None]:
    """While profiling, the host gets CPU 1 to itself and the load generator and the simulator share CPU 0,
    so that the host is rarely descheduled in the middle of its work: py-spy samples wall-clock time, and on
    a shared core a host waiting for the CPU inside a socket write would look like time spent writing."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        yield
        return
    others = (0, stack.simulator.pid)
    try:
        os.sched_setaffinity(host_pid, {cpus[1]})
        for pid in others:
            os.sched_setaffinity(pid, {cpus[0]})
        yield
    finally:
        for pid in (host_pid, *others):
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, set(cpus))


async def _load(client: Any, stream: bool, concurrency: int, seconds: float, limit: int) -> int:
    await gateway.run_block(client, 30, concurrency, stream)  # warm: imports, clients, token
    done = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and done < limit:
        block = await gateway.run_block(client, 50 * concurrency, concurrency, stream)
        done += len(block.latencies)
    return done


def gateway_profile(stack: Stack, *, stream: bool, concurrency: int, seconds: float) -> dict[str, Any]:
    name = f"profile-gateway-{'stream' if stream else 'plain'}-c{concurrency}"
    stack.configure(dataPlaneLatencyMs=0, identityLatencyMs=0)
    host, output = profiling.start_profiled_host(stack, name)
    try:

        async def main() -> int:
            client = gateway.gateway_client(host)
            try:
                return await _load(client, stream, concurrency, seconds, 100_000)
            finally:
                await client.close()

        with pinned(stack, profiling.profiled_pid(host)):
            requests_done = asyncio.run(main())
    finally:
        path = profiling.stop_profiled_host(host, output)
    if path is None:
        return {"name": name, "error": "py-spy wrote no profile"}
    return {
        "name": name,
        "load": f"{'streamed' if stream else 'plain'} chat completions, concurrency {concurrency}, backend latency 0",
        "requests": requests_done,
        "summary": profiling.summarize(path),
        "breakdowns": [profiling.breakdown(path, root) for root in GATEWAY_ROOTS],
        "file": str(path),
    }


def image_profile(stack: Stack, *, size: int, seconds: float) -> dict[str, Any]:
    name = "profile-process-image"
    stack.configure(dataPlaneLatencyMs=0, identityLatencyMs=20)
    host, output = profiling.start_profiled_host(stack, name)
    done = 0
    try:
        session = requests.Session()
        images = Images(size)
        deadline = time.monotonic() + seconds
        for _ in range(3):
            session.post(f"{host.url}/api/process_image", params={"instructions": "x"}, data=images.take(), timeout=60)
        with pinned(stack, profiling.profiled_pid(host)):
            while time.monotonic() < deadline and done < 10_000:
                url = f"{host.url}/api/process_image"
                session.post(url, params={"instructions": "x"}, data=images.take(), timeout=60)
                done += 1
        session.close()
    finally:
        path = profiling.stop_profiled_host(host, output)
        stack.configure(identityLatencyMs=0)
    if path is None:
        return {"name": name, "error": "py-spy wrote no profile"}
    return {
        "name": name,
        "load": f"process_image, {size // (1024 * 1024)} MB images, one at a time",
        "requests": done,
        "summary": profiling.summarize(path),
        "breakdowns": [profiling.breakdown(path, root) for root in IMAGE_ROOTS],
        "file": str(path),
    }


def image_allocations(size: int) -> dict[str, Any]:
    """Replays the service's own image steps in this process under tracemalloc, to see which step holds what:
    the body joined from the chunks the ASGI server hands over (blueprints.respond._read_body), then the request
    check and the chat body (services/images.py). Memory is relative to the received chunks, which exist
    before the handler runs. What the HTTP client and the socket layer do with the body afterwards is not in
    this replay (it is in the measured peak)."""
    from function_app import MAX_IMAGE_BODY_BYTES
    from services.images import chat_body, check_request

    image = Images(size).take()
    chunks = [image[i : i + 65536] for i in range(0, len(image), 65536)]
    del image
    steps: list[dict[str, Any]] = []
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()

        def note(step: str) -> None:
            current, peak = tracemalloc.get_traced_memory()
            steps.append({"step": step, "held_x": (current - base) / size, "peak_x": (peak - base) / size})

        body = b"".join(chunks)[: MAX_IMAGE_BODY_BYTES + 1]
        note("blueprints.respond._read_body: chunks joined (the chunk list is alive until it returns)")
        del chunks
        note("_read_body returned: the chunk list released")
        request = check_request(body, "Describe this image", "vision", None, None)
        content = chat_body(request, body)
        sent = 0
        for piece in content.slices():  # as the upload takes them: each slice is dropped once it is sent
            sent += len(piece)
            del piece
        note("services/images.chat_body: the chat JSON made slice by slice, each slice dropped once sent")
        del content
    finally:
        tracemalloc.stop()
    return {"bytes": size, "steps": steps}


def upload_copies(stack: Stack, size: int) -> dict[str, Any]:
    """What the HTTP client allocates while it uploads a body given as pieces: the base64 image as one piece
    (as the service sent it before slicing), against the same bytes in 768 KiB slices (as
    `services/images.chat_body` now makes them). tracemalloc in this process, an httpx2 client posting to the
    simulator; the pieces exist before tracing starts."""
    import base64

    import httpx2

    image = Images(size).take()
    encoded = base64.b64encode(image)
    before = b'{"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "image_url", '
    before += b'"image_url": {"url": "data:image/jpeg;base64,'
    after = b'"}}]}], "max_tokens": 10}'
    url = f"{stack.data_plane_endpoint()}openai/deployments/vision/chat/completions"
    headers = {"Authorization": f"Bearer {stack.fetch_token()}", "Content-Type": "application/json"}
    results: dict[str, Any] = {"bytes": size}

    async def measure(slice_size: int | None) -> dict[str, Any]:
        async def pieces() -> Any:
            yield before
            if slice_size is None:
                yield encoded
            else:
                for start in range(0, len(encoded), slice_size):
                    yield encoded[start : start + slice_size]
            yield after

        async with httpx2.AsyncClient(timeout=120) as client:
            tracemalloc.start()
            try:
                base, _ = tracemalloc.get_traced_memory()
                response = await client.post(
                    url, params={"api-version": "2024-10-21"}, content=pieces(), headers=headers
                )
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        return {"status": response.status_code, "peak_x": (peak - base) / size}

    results["one piece"] = asyncio.run(measure(None))
    results["768 KiB slices"] = asyncio.run(measure(768 * 1024))
    return results
