"""Contract fixtures: the published document, and a local stack (Azurite, simulator, host) to hold it against.

The stack is wired exactly as tests/e2e/conftest.py wires it (localdev.wiring, real processes on free loopback
ports), with two differences for fuzzing, both in the simulator's config: writes complete at once
(`provisioningDelaySeconds: 0`, so `?wait` never actually waits), and any model id deploys within a large quota,
so generated PUTs reach ARM's success paths instead of stopping at `DeploymentModelNotSupported`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from localdev.azurite import Azurite, start_azurite
from localdev.simulator.control_client import SimulatorControl
from localdev.wiring import PROJECT_ROOT, service_environment, simulator_config, start_host, start_simulator, stop

DOCUMENT_PATH = PROJECT_ROOT / "services" / "openapi.json"

# The same short ARM waits as tests/e2e/conftest.py's TUNING: the behaviour is the default one, only quicker.
TUNING = {
    "ARM_CONFLICT_RETRY_SECONDS": "4",
    "ARM_RETRY_BACKOFF_SECONDS": "0.05",
    "ARM_RETRY_BUDGET_SECONDS": "8",
    "ARM_POLL_INTERVAL_SECONDS": "0.2",
}
# The host's access line: "<method> <path> -> <status> (<ms> ms)"; the path is decoded, so it may hold spaces.
_ACCESS_LINE = re.compile(r"localdev\.host\.access: (?P<method>[A-Z]+) (?P<path>.*?) -> (?P<status>\d{3}) \(")


def fuzzing_simulator_config(**overrides: Any) -> dict[str, Any]:
    config = simulator_config(**{"provisioningDelaySeconds": 0, "retryAfterSeconds": 1, "pageSize": 10, **overrides})
    for account in config["accounts"]:
        account["models"] = None  # any model id deploys (the simulator's documented switch)
        account["quota"] = 1_000_000
    return config


@dataclass
class ContractStack:
    """Azurite, the simulator and one host (AUTH_MODE=none) as processes; the host's log counts its requests."""

    folder: Path
    azurite: Azurite | None = None
    simulator_url: str = ""
    host_url: str = ""
    host_log: Path = field(default_factory=Path)
    control: SimulatorControl | None = None
    _identity_header: str = ""
    _processes: list[Any] = field(default_factory=list)

    def start(self) -> None:
        storage = self.folder / "azurite"
        storage.mkdir()
        self.azurite = start_azurite(storage, self.folder / "azurite.log")
        self._identity_header = secrets.token_urlsafe(16)
        config_path = self.folder / "simulator.json"
        config_path.write_text(json.dumps(fuzzing_simulator_config()), encoding="utf-8")
        simulator = start_simulator(config_path, self._identity_header, self.folder / "simulator.log")
        self._processes.append(simulator.process)
        self.simulator_url = simulator.url
        self.control = SimulatorControl(simulator.url)
        self.host_log = self.folder / "host.log"
        self.host_url = self.start_host(log_path=self.host_log)

    def environment(self, **overrides: str) -> dict[str, str]:
        assert self.azurite is not None
        base = {key: value for key, value in os.environ.items() if not key.startswith(("AZURE_", "IDENTITY_", "MSI_"))}
        return {
            **base,
            **service_environment(self.simulator_url, self._identity_header, **TUNING),
            # No principal needed: every caller has every role (local development mode).
            "AUTH_MODE": "none",
            "AzureWebJobsStorage": self.azurite.connection_string,
            **overrides,
        }

    def start_host(self, *extra_args: str, log_path: Path | None = None, **overrides: str) -> str:
        """Another host on the same simulator and Azurite (e.g. another AUTH_MODE); answers its base URL."""
        log_path = log_path or self.folder / f"host-{len(self._processes)}.log"
        host = start_host(self.environment(**overrides), log_path, extra_args=extra_args)
        self._processes.append(host.process)
        return host.url

    def access_lines(self, log: Path | None = None) -> list[tuple[str, str, int]]:
        """(method, path, status) of every request the host (or the one logging to `log`) answered so far."""
        text = (log or self.host_log).read_text(encoding="utf-8", errors="replace")
        return [(m["method"], m["path"], int(m["status"])) for m in _ACCESS_LINE.finditer(text)]

    def close(self) -> None:
        for process in reversed(self._processes):
            stop(process)
        if self.azurite is not None:
            self.azurite.stop()


@pytest.fixture(scope="session")
def document() -> dict[str, Any]:
    return json.loads(DOCUMENT_PATH.read_text(encoding="utf-8"))


@pytest.fixture
def slow_writes(contract_stack: ContractStack) -> Iterator[SimulatorControl]:
    """The simulator with writes that take a second (so 202s happen); back to the fuzzing config afterwards."""
    assert contract_stack.control is not None
    contract_stack.control.set_config(fuzzing_simulator_config(provisioningDelaySeconds=1.0))
    try:
        yield contract_stack.control
    finally:
        contract_stack.control.set_config(fuzzing_simulator_config())


@pytest.fixture(scope="session")
def contract_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContractStack]:
    stack = ContractStack(tmp_path_factory.mktemp("contract"))
    try:
        stack.start()
        yield stack
    finally:
        stack.close()
