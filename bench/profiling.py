"""Sampling profiles of the service's host with py-spy (bench/requirements.txt), and their summaries.

py-spy starts the host itself (`py-spy record -- python -m localdev.host ...`): attaching to a running
process needs to read the interpreter's version from the binary, which fails for some builds, while
spawning works everywhere py-spy does. Idle samples (the event loop waiting in epoll, threads parked) are
left out, so the profile is where the host spends CPU. Stacks are summarised two ways: by the leaf frame
("self") and by every function on the stack, counted once per sample ("inclusive").
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .stack import Proc, Stack, interrupt, start_uvicorn_child

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if os.access(found, os.X_OK) else None


def start_profiled_host(stack: Stack, name: str, rate: int = 250) -> tuple[Proc, Path]:
    """A service host under `py-spy record`; stop it with `stop_profiled_host` to get the profile written."""
    spy = py_spy()
    if spy is None:
        raise RuntimeError("py-spy is not installed: pip install -r bench/requirements.txt")
    output = stack.folder / f"{name}.pyspy.txt"
    output.unlink(missing_ok=True)
    command = [
        spy, "record", "--gil", "--rate", str(rate), "--format", "raw", "--output", str(output), "--",
        sys.executable, "-m", "localdev.host", "--port", "0", "--settings", os.devnull,
    ]  # fmt: skip
    proc = start_uvicorn_child(command, stack.environment(), stack.folder / f"{name}.log", Path.cwd())
    proc.name = name
    return proc, output


def stop_profiled_host(proc: Proc, output: Path, timeout: float = 30) -> Path | None:
    """Ctrl-C the host (py-spy's child), then wait for py-spy to write the profile."""
    for child in _children(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, 2)
    deadline = time.monotonic() + timeout
    while proc.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    interrupt(proc.process)
    return output if output.exists() else None


def profiled_pid(proc: Proc) -> int:
    """The host's own pid (py-spy's child)."""
    children = _children(proc.pid)
    return children[0] if children else proc.pid


def _children(pid: int) -> list[int]:
    found: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    for task in task_dir.iterdir() if task_dir.exists() else []:
        children = (task / "children").read_text().split()
        found += [int(child) for child in children]
    return found


def _short(file: str) -> str:
    """py-spy already writes paths relative to sys.path (`asyncio/events.py`, `openai/_client.py`); shorten
    what is still absolute."""
    if not file.startswith("/"):
        return file
    if "site-packages/" in file:
        return file.split("site-packages/", 1)[1]
    root = str(Path(__file__).resolve().parent.parent) + "/"
    return file.removeprefix(root)


def summarize(path: Path, top: int = 15) -> dict[str, Any]:
    """Top functions by self and inclusive samples, from py-spy's raw (collapsed stacks) output."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_area: Counter[str] = Counter()
    total = idle = imports = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text.strip() or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_parse(frame) for frame in stack_text.split(";")]
        frames = [frame for frame in frames if frame is not None]
        if not frames:
            continue
        leaf_func, leaf_file, leaf_line = frames[-1]
        if _is_idle(leaf_func, leaf_file):
            idle += count
            continue
        if any(file.startswith("<frozen importlib") for _, file, _ in frames):
            imports += count
            continue
        total += count
        self_counts[f"{leaf_func} ({leaf_file}:{leaf_line})"] += count
        for key in {f"{func} ({file})" for func, file, _ in frames}:
            inclusive[key] += count
        by_area[_area(frames)] += count

    def table(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"frame": k, "samples": n, "share": n / total if total else 0} for k, n in counter.most_common(top)]

    return {
        "samples": total,
        "idle_samples_dropped": idle,
        "import_samples_dropped": imports,
        "self": table(self_counts),
        "inclusive": table(inclusive),
        "areas": table(by_area),
    }


# Waiting, not working: py-spy's own idle detection misses these for this interpreter build.
_IDLE_LEAVES = {
    ("EpollSelector.select", "selectors.py"),
    ("_worker", "concurrent/futures/thread.py"),
    ("Condition.wait", "threading.py"),
    ("Event.wait", "threading.py"),
    ("Thread._wait_for_tstate_lock", "threading.py"),
    ("Queue.get", "queue.py"),
}


def _is_idle(func: str, file: str) -> bool:
    return (func, file) in _IDLE_LEAVES


def _parse(frame: str) -> tuple[str, str, str] | None:
    match = _FRAME.match(frame.strip())
    if match is None:
        return None
    return match["func"], _short(match["file"]), match["line"] or "?"


# Where a sample's time goes, by the top-level package of its innermost frame; stdlib modules by name.
_AREAS = {
    "openai": "openai SDK",
    "httpx2": "httpx2 / httpcore2 (HTTP client)",
    "httpcore2": "httpx2 / httpcore2 (HTTP client)",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic",
    "logging": "logging",
    "json": "json",
    "uvicorn": "uvicorn + h11 (HTTP server)",
    "h11": "uvicorn + h11 (HTTP server)",
    "httptools": "uvicorn + h11 (HTTP server)",
    "starlette": "starlette / fastapi",
    "fastapi": "starlette / fastapi",
    "asyncio": "asyncio (event loop, socket reads/writes)",
    "selectors": "asyncio (event loop, socket reads/writes)",
    "anyio": "anyio",
    "sniffio": "anyio",
    "azure": "azure-identity / azure-core / msal",
    "msal": "azure-identity / azure-core / msal",
    "requests": "requests / urllib3",
    "urllib3": "requests / urllib3",
    "services": "the service (services/, function_app.py)",
    "function_app.py": "the service (services/, function_app.py)",
    "blueprints": "the service (services/, function_app.py)",
    "localdev": "local host (localdev/host.py)",
}


def _area(frames: list[tuple[str, str, str]]) -> str:
    top = frames[-1][1].split("/", 1)[0]
    return _AREAS.get(top, f"other: {top}")


def breakdown(path: Path, root: str, top: int = 12) -> dict[str, Any]:
    """Where the samples under `root` (a "function (file)" key, e.g. "InferenceGateway._send
    (services/inference.py)") go: aggregated by the frame directly below it (or "(self)")."""
    below: Counter[str] = Counter()
    total = 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text.strip() or not count_text.isdigit():
            continue
        frames = [frame for frame in (_parse(f) for f in stack_text.split(";")) if frame is not None]
        if not frames or _is_idle(frames[-1][0], frames[-1][1]):
            continue
        if any(file.startswith("<frozen importlib") for _, file, _ in frames):
            continue
        keys = [f"{func} ({file})" for func, file, _ in frames]
        if root not in keys:
            continue
        index = len(keys) - 1 - keys[::-1].index(root)  # the innermost occurrence
        count = int(count_text)
        total += count
        if index + 1 < len(frames):
            func, file, _ = frames[index + 1]
            caller_line = frames[index][2]
            below[f"{func} ({file}) from line {caller_line}"] += count
        else:
            below["(self)"] += count
    return {
        "root": root,
        "samples": total,
        "children": [{"frame": k, "samples": n, "share": n / total if total else 0} for k, n in below.most_common(top)],
    }
