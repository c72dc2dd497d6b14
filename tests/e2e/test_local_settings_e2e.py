"""local.settings.json.example works as written on a workstation: the host reads its Values as `func start` does.

Only the settings that must point at the simulator instead of a real account are given in the environment
(which wins over the file, as with `func start`); everything else, AUTH_MODE included, comes from the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import requests

from localdev.simulator.control_client import SimulatorControl
from localdev.wiring import PROJECT_ROOT, service_environment, start_host, stop

from .conftest import Stack

EXAMPLE = PROJECT_ROOT / "local.settings.json.example"


def test_the_example_settings_serve_the_deployments_route(stack: Stack, sim: SimulatorControl, tmp_path: Path) -> None:
    values = json.loads(EXAMPLE.read_text(encoding="utf-8"))["Values"]
    simulator_only = service_environment(stack.url, stack.identity_header)
    # The test's point: the file, not this environment, decides how callers are authenticated.
    assert "AUTH_MODE" not in simulator_only
    kept = {name: value for name, value in os.environ.items() if not name.startswith(("AZURE_", "IDENTITY_", "MSI_"))}
    for name in ("AUTH_MODE", "WEBSITE_INSTANCE_ID", *values):
        kept.pop(name, None)
    host = start_host({**kept, **simulator_only}, tmp_path / "host.log", extra_args=("--settings", str(EXAMPLE)))
    try:
        answer = requests.get(f"{host.url}/api/deployments", timeout=60)
    finally:
        stop(host.process)
    log = (tmp_path / "host.log").read_text(errors="replace")
    assert answer.status_code == 200, f"{answer.status_code} {answer.text}\n{log}"
    assert "vision" in answer.text  # the simulator's seeded deployment, read through ARM
