"""The processes a benchmark drives: the simulator, the service's local host, the baseline and floor apps.

Everything binds 127.0.0.1 only. Processes are started with the project's own wiring (`localdev.wiring`),
so the host runs exactly as `./bin/run-local` and the end-to-end tests run it: `python -m localdev.host`
serving `function_app.py` on uvicorn, with azure-identity pointed at the simulator's identity endpoint.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from localdev.simulator.control_client import SimulatorControl
from localdev.wiring import (
    DEMO_ACCOUNTS,
    PROJECT_ROOT,
    service_environment,
    simulator_config,
    start_host,
    start_simulator,
    stop,
)

MAIN = DEMO_ACCOUNTS[0]
API_VERSION = "2024-10-21"
DATA_PLANE_SCOPE = "https://cognitiveservices.azure.com"
# provisioningDelaySeconds is not a multiple of the simulator's Retry-After (1 s, an integer), so a poll
# never lands exactly on the moment the operation finishes.
BASE_SIM_CONFIG: dict[str, Any] = {"provisioningDelaySeconds": 1.5, "retryAfterSeconds": 1, "pageSize": 10}
_UVICORN_READY = re.compile(rb"Uvicorn running on (http://127\.0\.0\.1:\d+)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS since start or since `reset_peak`) of a process, in KiB."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
    return values


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux `clear_refs` 5); False where the kernel refuses."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def bench_environment(sim_url: str, identity_header: str, **overrides: str) -> dict[str, str]:
    """The host's environment as `./bin/run-local` sets it: this one minus any Azure identity settings, plus
    the wiring's app settings and AUTH_MODE=none (local development: no caller authentication)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_", "MSI_"))}
    base["PYTHONPATH"] = str(PROJECT_ROOT)
    return {**base, **service_environment(sim_url, identity_header), "AUTH_MODE": "none", **overrides}


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    url: str

    @property
    def pid(self) -> int:
        return self.process.pid


def start_uvicorn_child(command: list[str], environment: Mapping[str, str], log_path: Path, cwd: Path) -> Proc:
    """A child that serves uvicorn on port 0 and prints the URL it got (as `localdev.wiring` does)."""
    offset = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as output:
        process = subprocess.Popen(command, cwd=cwd, env=dict(environment), stdout=output, stderr=output)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open(log_path, "rb") as log:
            log.seek(offset)
            match = _UVICORN_READY.search(log.read())
        if match:
            return Proc(command[2] if len(command) > 2 else command[0], process, match.group(1).decode())
        if process.poll() is not None:
            break
        time.sleep(0.05)
    stop(process)
    raise RuntimeError(f"{' '.join(command[1:3])} did not start; see {log_path}")


@dataclass
class Stack:
    """One simulator for the whole run, and the hosts started against it."""

    folder: Path
    identity_header: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    children: list[Proc] = field(default_factory=list)
    azurite: Any = None

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.azurite = _start_azurite(self.folder)
        config_path = self.folder / "simulator.json"
        config_path.write_text(json.dumps(self.sim_config()), encoding="utf-8")
        started = start_simulator(config_path, self.identity_header, self.folder / "simulator.log")
        self.simulator = Proc("simulator", started.process, started.url)
        self.sim_url = started.url
        self.control = SimulatorControl(self.sim_url, timeout=30)
        self.control.wait_ready()

    @staticmethod
    def sim_config(**overrides: Any) -> dict[str, Any]:
        return simulator_config(**{**BASE_SIM_CONFIG, **overrides})

    # simulator

    def configure(self, **changes: Any) -> None:
        """Set top-level simulator keys (latencies); deployments are kept."""
        self.control.patch_config(changes)

    def reset(self, **overrides: Any) -> None:
        """Back to the base config (and seeded deployments), with `overrides` on top; log and stats cleared."""
        self.control.set_config(self.sim_config(**overrides))

    def data_plane_endpoint(self) -> str:
        return MAIN.endpoint(self.sim_url)

    def fetch_token(self, resource: str = DATA_PLANE_SCOPE) -> str:
        """A data-plane token from the simulator's managed-identity endpoint, as the App Service protocol gives it."""
        response = requests.get(
            f"{self.sim_url}/msi/token",
            params={"api-version": "2019-08-01", "resource": resource},
            headers={"X-IDENTITY-HEADER": self.identity_header},
            timeout=10,
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    # children

    def environment(self, **overrides: str) -> dict[str, str]:
        storage = {"AzureWebJobsStorage": self.azurite.connection_string} if self.azurite is not None else {}
        return bench_environment(self.sim_url, self.identity_header, **storage, **overrides)

    def start_service(self, name: str = "host", **overrides: str) -> Proc:
        started = start_host(self.environment(**overrides), self.folder / f"{name}.log")
        proc = Proc(name, started.process, started.url)
        self.children.append(proc)
        return proc

    def start_baseline(self, name: str = "baseline") -> Proc:
        """The original sample's image handler (bench/baseline_app.py), served on uvicorn in its own process."""
        workdir = self.folder / f"{name}-cwd"  # its temp.jpg lives here, not in the repository
        workdir.mkdir(exist_ok=True)
        environment = {
            **self.environment(),
            "GPT4V_ENDPOINT": self.data_plane_endpoint(),
            "GPT4V_DEPLOYMENT": "vision",
        }
        command = [sys.executable, "-m", "bench.baseline_app", "--port", "0"]
        proc = start_uvicorn_child(command, environment, self.folder / f"{name}.log", workdir)
        proc.name = name
        self.children.append(proc)
        return proc

    def stop_child(self, proc: Proc) -> None:
        stop(proc.process)
        if proc in self.children:
            self.children.remove(proc)

    def close(self) -> None:
        for proc in list(self.children):
            self.stop_child(proc)
        stop(self.simulator.process)
        self.control.close()
        if self.azurite is not None:
            self.azurite.stop()


def _start_azurite(folder: Path) -> Any:
    """Azurite's Table service for the audit trail, as `./bin/run-local` starts it; None where the project has
    no Azurite (then the service writes its audit records to the log)."""
    try:
        from localdev.azurite import AZURITE_TABLE, start_azurite
    except ImportError:
        return None
    if not AZURITE_TABLE.exists():
        return None
    storage = folder / "azurite"
    storage.mkdir(exist_ok=True)
    return start_azurite(storage, folder / "azurite.log")


def interrupt(process: subprocess.Popen[Any], timeout: float = 15) -> None:
    """Ctrl-C a child (uvicorn shuts down cleanly, so a profiler wrapping it writes its output)."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop(process)
