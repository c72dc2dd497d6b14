"""End-to-end fixtures: the simulator and the local host as real processes on free loopback ports.

Nothing is patched: the host runs function_app.py with the real azure-identity, requests and service
code; the only fake is the simulator at the HTTP boundary.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from localdev.azurite import Azurite, start_azurite
from localdev.simulator.control_client import SimulatorControl
from localdev.wiring import (
    entra_environment,
    service_environment,
    simulator_config,
    start_host,
    start_simulator,
    stop,
)
from tests.e2e.inprocess import InProcessHost

# Short waits so the suite stays quick; the behaviour is the same as with the defaults.
TUNING = {
    "ARM_CONFLICT_RETRY_SECONDS": "4",
    "ARM_RETRY_BACKOFF_SECONDS": "0.05",
    "ARM_RETRY_BUDGET_SECONDS": "8",
    "ARM_POLL_INTERVAL_SECONDS": "0.2",
}
PROVISIONING_DELAY = 0.6
BASE_CONFIG = simulator_config(provisioningDelaySeconds=PROVISIONING_DELAY, retryAfterSeconds=1, pageSize=10)


class Api:
    """The service as a caller sees it: plain HTTP with requests."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return self.session.request(method, f"{self.base_url}/api{path}", **kwargs)

    def put(self, name: str, body: Any, **params: str) -> requests.Response:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return self.call(
            "PUT", f"/deployments/{name}", data=data, params=params, headers={"Content-Type": "application/json"}
        )

    def patch(self, name: str, body: Any, **params: str) -> requests.Response:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return self.call(
            "PATCH", f"/deployments/{name}", data=data, params=params, headers={"Content-Type": "application/json"}
        )

    def get(self, name: str | None = None, **params: str) -> requests.Response:
        return self.call("GET", "/deployments" + (f"/{name}" if name else ""), params=params)

    def delete(self, name: str, **params: str) -> requests.Response:
        return self.call("DELETE", f"/deployments/{name}", params=params)

    def follow(self, location: str) -> requests.Response:
        return self.session.get(f"{self.base_url}{location}", timeout=30)


class Stack:
    """A running simulator, and a way to start hosts wired to it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        storage = folder / "azurite"
        storage.mkdir()
        self.azurite: Azurite = start_azurite(storage, folder / "azurite.log")
        self.identity_header = secrets.token_urlsafe(16)
        config_path = folder / "simulator.json"
        config_path.write_text(json.dumps(BASE_CONFIG), encoding="utf-8")
        simulator = start_simulator(config_path, self.identity_header, folder / "sim.log")
        self.process = simulator.process
        self.url = simulator.url
        self.entra = entra_environment(simulator.entra_url, simulator.ca_bundle)
        self.control = SimulatorControl(self.url)
        self.hosts: list[subprocess.Popen[bytes]] = []
        self._inprocess: InProcessHost | None = None

    def environment(self, **overrides: str) -> dict[str, str]:
        import os

        base = {key: value for key, value in os.environ.items() if not key.startswith(("AZURE_", "IDENTITY_", "MSI_"))}
        local = {"AUTH_MODE": "none", "AzureWebJobsStorage": self.azurite.connection_string}
        wired = service_environment(self.url, self.identity_header, **TUNING)
        return {**base, **wired, **self.entra, **local, **overrides}

    def start_host(self, *extra_args: str, **overrides: str) -> Api:
        log_path = self.folder / f"host-{len(self.hosts)}.log"
        host = start_host(self.environment(**overrides), log_path, extra_args=extra_args)
        self.hosts.append(host.process)
        return Api(host.url)

    def configured(self, **overrides: str) -> Api:
        """The app with these settings, served in this process with a context of its own (no new process).

        For settings of the app itself; what azure-identity reads from the environment, and AUTH_MODE=keys
        (decided when the app registers its functions), need `start_host`."""
        import os

        # This process plays the Function App: the platform's managed-identity variables, as a host gets (set on
        # every call: the browser suite, in the same worker, points them at its own simulator).
        wired = service_environment(self.url, self.identity_header)
        os.environ.update({name: wired[name] for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")})
        if self._inprocess is None:
            self._inprocess = InProcessHost()
        return Api(self._inprocess.add(self.environment(**overrides)))

    def close(self) -> None:
        if self._inprocess is not None:
            self._inprocess.close()
        for host in self.hosts:
            stop(host)
        stop(self.process)
        self.azurite.stop()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(tmp_path_factory.mktemp("e2e"))
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="session")
def shared_api(stack: Stack) -> Api:
    return stack.start_host()


@pytest.fixture
def sim(stack: Stack) -> SimulatorControl:
    """The simulator, back to its base configuration with no deployments, faults or logged requests."""
    stack.control.set_config(BASE_CONFIG)
    stack.control.reset()
    return stack.control


@pytest.fixture
def api(shared_api: Api, sim: SimulatorControl) -> Api:
    return shared_api
