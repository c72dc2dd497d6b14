"""`python -m localdev` (what bin/run-local runs) as a process: stopping it, and a port that is taken.

However it stops (a signal from an IDE's stop button, `timeout` or a process manager, Ctrl+C, or the host
failing), the simulator and Azurite it started must be gone and its working folder removed. Its child
processes are found through /proc, so the tests do not depend on what it prints.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from localdev.wiring import PROJECT_ROOT

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds child processes through /proc")


def _environment() -> dict[str, str]:
    """The caller's environment without anything that would point the app elsewhere."""
    prefixes = ("AZURE_", "IDENTITY_", "MSI_", "ARM_", "AUTH_", "WEBSITE_")
    return {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}


# The simulator, Azurite, and redis-server where it is installed (bin/run-local and bin/test install it).
LOCAL_CHILDREN = 3 if shutil.which("redis-server") else 2


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(child) for child in (task / "children").read_text().split())
    return found


def _running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (a re-parented child nobody reaps still has an entry)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _working_folder(children: set[int]) -> Path:
    """The temporary folder, read from the simulator's command line (`--config <folder>/simulator.json`)."""
    for child in children:
        arguments = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        if b"--config" in arguments:
            return Path(arguments[arguments.index(b"--config") + 1].decode()).parent
    raise AssertionError(f"no simulator among {children}")


def _wait_serving(process: subprocess.Popen[bytes], log: Path) -> int:
    """The port from the banner (`--port 0`: no other process can take it between choosing and binding)."""
    deadline = time.monotonic() + 120  # imports, Azurite and the simulator on a loaded 2-core machine
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        assert process.poll() is None, text
        if found := re.search(r"^Service: +http://127\.0\.0\.1:(\d+)/api", text, re.MULTILINE):
            port = int(found.group(1))
            try:
                requests.get(f"http://127.0.0.1:{port}/api/deployments", timeout=5)
                return port
            except requests.ConnectionError:
                pass
        time.sleep(0.2)
    raise AssertionError("python -m localdev did not serve in time:\n" + log.read_text(errors="replace"))


def _wait_gone(pids: set[int]) -> set[int]:
    deadline = time.monotonic() + 30
    while (left := {pid for pid in pids if _running(pid)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@pytest.fixture
def started(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    log = tmp_path / "localdev.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "localdev", "--port", "0", "--provisioning-delay", "0"],
            cwd=PROJECT_ROOT,
            env=_environment(),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    children: set[int] = set()
    try:
        port = _wait_serving(process, log)
        children = _children(process.pid)
        yield process, port, log
    finally:
        for pid in {process.pid, *children}:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
        process.wait()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_stops_the_simulator_and_azurite_and_removes_the_folder(
    started: tuple[subprocess.Popen[bytes], int, Path], stop_signal: signal.Signals
) -> None:
    process, _, log = started
    children = _children(process.pid)
    assert len(children) == LOCAL_CHILDREN, children
    folder = _working_folder(children)
    assert folder.is_dir()

    process.send_signal(stop_signal)
    process.wait(timeout=60)

    assert _wait_gone(children) == set(), log.read_text(errors="replace")
    assert not folder.exists()
    assert process.returncode == 128 + stop_signal  # the shell's convention for "stopped by a signal"


_CRASHING_HOST = """
import errno, os, sys
from pathlib import Path
from localdev import __main__ as run_local, host

def serve(*args, **kwargs):
    children = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        children.update((task / "children").read_text().split())
    print("children:", " ".join(sorted(children)), flush=True)
    raise OSError(errno.EADDRINUSE, "address already in use")

host.serve = serve
run_local.main(sys.argv[1:])
"""


def test_a_host_that_fails_leaves_nothing_behind() -> None:
    """The host failing as it starts (here: its port taken at the last moment) stops the rest too."""
    process = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_HOST, "--port", "0"],
        cwd=PROJECT_ROOT,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output = []
    children: set[int] = set()
    folder = None
    for line in process.stdout:
        output.append(line)
        if line.startswith("children:"):
            children = {int(pid) for pid in line.split()[1:]}
            folder = _working_folder(children)  # read while the simulator still runs
    process.wait(timeout=60)
    assert process.returncode != 0
    assert len(children) == LOCAL_CHILDREN, "".join(output)
    assert _wait_gone(children) == set()
    assert folder is not None and not folder.exists()


def test_a_taken_port_is_refused_before_anything_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        finished = subprocess.run(
            [sys.executable, "-m", "localdev", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=_environment(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert finished.returncode != 0
    assert f"port {port}" in finished.stderr and "--port" in finished.stderr, finished.stderr
    # Nothing was started: no banner, no curl lines.
    assert "Simulator:" not in finished.stdout and "curl" not in finished.stdout
