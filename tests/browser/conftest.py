"""The platform page in a real browser: Debian's headless Chromium driven by Playwright, against the simulator.

One simulator process and the app served in this process (tests/e2e/inprocess.py), one context per
configuration (AUTH_MODE=none: every role; entra with the Easy Auth principal header: chosen roles), and one
browser for the module. Nothing is patched: the page's own JavaScript calls the real routes.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from localdev.browser import chromium_path, launch
from localdev.simulator.control_client import SimulatorControl
from localdev.wiring import DEMO_ACCOUNTS, service_environment, simulator_config, start_simulator, stop
from tests.e2e.inprocess import InProcessHost

MAIN = DEMO_ACCOUNTS[0]
HOSTILE = "<img src=x onerror=window.__pwned=1>"
EXTRA: list[dict[str, Any]] = [
    {
        "name": "support-bot",
        "model": {"format": "OpenAI", "name": MAIN.models[0], "version": "1"},
        "sku": {"name": "Standard", "capacity": 1},
        "tags": {"team": "support"},
    },
    {
        "name": "tagged",
        "model": {"format": "OpenAI", "name": MAIN.models[1], "version": "1"},
        "sku": {"name": "Standard", "capacity": 1},
        "tags": {"note": HOSTILE},
    },
]
PROVISIONING_DELAY = 0.5


def page_config() -> dict[str, Any]:
    config = simulator_config(provisioningDelaySeconds=PROVISIONING_DELAY, retryAfterSeconds=1)
    config["accounts"][0]["deployments"] = [*config["accounts"][0]["deployments"], *EXTRA]
    return config


@dataclass
class Served:
    """The simulator, and the app's base URLs per configuration."""

    control: SimulatorControl
    host: InProcessHost
    settings: dict[str, str]
    urls: dict[str, str] = field(default_factory=dict)

    def url(self, name: str, **overrides: str) -> str:
        if name not in self.urls:
            self.urls[name] = self.host.add({**self.settings, **overrides})
        return self.urls[name]


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if chromium_path() is None:
        pytest.fail("No Chromium: run bin/chromium (bin/test does) or set CHROMIUM to its path.")
    folder: Path = tmp_path_factory.mktemp("browser")
    header = secrets.token_urlsafe(16)
    config_path = folder / "simulator.json"
    config_path.write_text(json.dumps(page_config()), encoding="utf-8")
    simulator = start_simulator(config_path, header, folder / "sim.log")
    wired = service_environment(simulator.url, header, ARM_POLL_INTERVAL_SECONDS="0.2")
    saved = {name: os.environ.get(name) for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")}
    os.environ.update({name: wired[name] for name in saved})  # this process plays the Function App
    base = {key: value for key, value in os.environ.items() if not key.startswith(("AZURE_", "MSI_"))}
    base.pop("AzureWebJobsStorage", None)  # audit records go to the log: nothing to start for them
    host = InProcessHost()
    try:
        yield Served(SimulatorControl(simulator.url), host, {**base, **wired})
    finally:
        host.close()
        stop(simulator.process)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        running = launch(playwright)
        try:
            yield running
        finally:
            running.close()
