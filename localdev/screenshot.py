"""Regenerate docs/dashboard.png: the platform page against the local simulator, in headless Chromium.

    python -m localdev.screenshot [--out docs/dashboard.png] [--width 1280]     (bin/screenshot)

Starts the simulator and the host as `bin/run-local` does (AUTH_MODE=none, so every control shows), adds a few
fine-tuned deployments of different teams to the demo accounts, leaves one idle for 9 days, puts a fine-tuned Phi
model live as a serverless endpoint, and photographs /api/dashboard.
"""

from __future__ import annotations

import argparse
import json
import secrets
import tempfile
from pathlib import Path
from typing import Any

from .browser import launch
from .wiring import (
    DEMO_ACCOUNTS,
    DEMO_PROJECTS,
    PROJECT_ROOT,
    service_environment,
    simulator_config,
    start_host,
    start_simulator,
    stop,
)

MAIN = DEMO_ACCOUNTS[0]
# Deployments a platform team typically sees next to the demo accounts' own.
EXTRA: list[dict[str, Any]] = [
    {
        "name": "support-bot",
        "model": {"format": "OpenAI", "name": MAIN.models[0], "version": "1"},
        "sku": {"name": "Standard", "capacity": 1},
        "tags": {"team": "support", "expiresAt": "2027-01-15T18:00:00Z"},
    },
    {
        "name": "claims-triage",
        "model": {"format": "OpenAI", "name": MAIN.models[1], "version": "1"},
        "sku": {"name": "GlobalStandard", "capacity": 20},
        "tags": {"team": "claims", "keepAlive": "true"},
    },
]


def showcase_config() -> dict[str, Any]:
    config = simulator_config(provisioningDelaySeconds=1)
    config["accounts"][0]["deployments"] = [*config["accounts"][0]["deployments"], *EXTRA]
    return config


def _showcase_changes(api: str, simulator: str) -> None:
    """What the page is for: a fine-tuned deployment left idle while it costs money, and a serverless endpoint."""
    import requests

    from .simulator.control_client import SimulatorControl

    SimulatorControl(simulator).shift_last_use(MAIN.account_name, "support-bot", 9)
    model = DEMO_PROJECTS[0].models[0]["name"]
    answer = requests.put(
        f"{api}/api/serverless-endpoints/phi-support", params={"wait": "30"}, json={"model": model}, timeout=60
    )
    answer.raise_for_status()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localdev.screenshot", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "dashboard.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=800)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="dashboard-shot-") as folder_name:
        folder = Path(folder_name)
        header = secrets.token_urlsafe(16)
        config = folder / "simulator.json"
        config.write_text(json.dumps(showcase_config()), encoding="utf-8")
        simulator = start_simulator(config, header, folder / "simulator.log")
        host = None
        try:
            environment = {**service_environment(simulator.url, header), "AUTH_MODE": "none"}
            host = start_host(environment, folder / "host.log")
            _showcase_changes(host.url, simulator.url)
            with sync_playwright() as playwright:
                browser = launch(playwright)
                page = browser.new_page(viewport={"width": args.width, "height": args.height})
                page.goto(f"{host.url}/api/dashboard")
                page.wait_for_selector("#rows tbody tr")
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out), full_page=True)
                browser.close()
        finally:
            if host is not None:
                stop(host.process)
            stop(simulator.process)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
