"""`python -m localdev.simulator` as a process: the ready line, the identity secret, config errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from localdev.simulator.control_client import SimulatorControl

from .conftest import ACCOUNT, RG, SUB

PROJECT_ROOT = Path(__file__).resolve().parents[2]
READY_PREFIX = "Azure simulator listening on "


@contextmanager
def simulator_process(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, list[str]]]:
    """Start the CLI, yield (base_url, extra stdout lines read so far), stop it afterwards."""
    full_env = {key: value for key, value in os.environ.items() if key != "IDENTITY_HEADER"}
    full_env.update(env or {})
    process = subprocess.Popen(
        [sys.executable, "-m", "localdev.simulator", "--port", "0", *args],
        cwd=PROJECT_ROOT,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline().strip()
        assert ready.startswith(READY_PREFIX), ready + (process.stderr.read() if process.stderr else "")
        base_url = ready.removeprefix(READY_PREFIX)
        extra = [] if "--identity-header" in args or env else [process.stdout.readline().strip()]
        yield base_url, extra
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_cli_announces_its_port_and_generated_secret() -> None:
    with simulator_process() as (base_url, extra):
        assert base_url.startswith("http://127.0.0.1:")
        assert not base_url.endswith(":0")
        assert extra[0].startswith("IDENTITY_HEADER=")
        secret = extra[0].removeprefix("IDENTITY_HEADER=")
        SimulatorControl(base_url).wait_ready(5)
        response = requests.get(
            f"{base_url}/msi/token",
            params={"api-version": "2019-08-01", "resource": "https://management.azure.com"},
            headers={"X-IDENTITY-HEADER": secret},
            timeout=10,
        )
        assert response.status_code == 200


def test_cli_takes_config_and_secret_from_arguments_or_environment(tmp_path: Path) -> None:
    config = tmp_path / "sim.json"
    config.write_text(json.dumps({"accounts": [{"subscriptionId": SUB, "resourceGroup": RG, "accountName": ACCOUNT}]}))
    with simulator_process("--config", str(config), "--identity-header", "from-args") as (base_url, _):
        assert SimulatorControl(base_url).get_config()["accounts"][0]["accountName"] == ACCOUNT
        headers = {"X-IDENTITY-HEADER": "from-args"}
        params = {"api-version": "2019-08-01", "resource": "https://management.azure.com"}
        assert requests.get(f"{base_url}/msi/token", params=params, headers=headers, timeout=10).ok
    with simulator_process(env={"IDENTITY_HEADER": "from-env"}) as (base_url, _):
        headers = {"X-IDENTITY-HEADER": "from-env"}
        params = {"api-version": "2019-08-01", "resource": "https://management.azure.com"}
        assert requests.get(f"{base_url}/msi/token", params=params, headers=headers, timeout=10).ok


def test_cli_refuses_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"pageSize": "ten"}))
    result = subprocess.run(
        [sys.executable, "-m", "localdev.simulator", "--port", "0", "--config", str(config)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "pageSize" in result.stderr
    assert result.stdout == ""
