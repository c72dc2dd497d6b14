"""How the local pieces fit together: the simulator's accounts and the app settings that point at them.

Used by `python -m localdev` and by the end-to-end tests, so both run the same wiring.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .simulator.config import DEFAULT_TENANT_ID

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class LocalAccount:
    """An Azure OpenAI account as both sides see it: an alias for the service, an ARM resource for the simulator."""

    alias: str
    subscription_id: str
    resource_group: str
    account_name: str
    location: str
    models: tuple[str, ...] = ()
    quota: int = 1000
    deployments: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    fine_tuning_jobs: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    inference_deployments: tuple[str, ...] = ("*",)
    tenant_id: str | None = None  # None: the managed identity's own tenant

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.CognitiveServices/accounts/{self.account_name}"
        )

    def simulator_entry(self) -> dict[str, Any]:
        return {
            "subscriptionId": self.subscription_id,
            "resourceGroup": self.resource_group,
            "accountName": self.account_name,
            "location": self.location,
            "quota": self.quota,
            "models": list(self.models),
            "deployments": list(self.deployments),
            "fineTuningJobs": list(self.fine_tuning_jobs),
            **({"tenantId": self.tenant_id} if self.tenant_id else {}),
        }

    def endpoint(self, simulator_url: str) -> str:
        """The account's data-plane URL on the simulator."""
        return f"{simulator_url}/dataplane/{self.account_name}/"

    def service_entry(self, simulator_url: str) -> dict[str, Any]:
        return {
            "subscriptionId": self.subscription_id,
            "resourceGroup": self.resource_group,
            "accountName": self.account_name,
            "endpoint": self.endpoint(simulator_url),
            "inferenceDeployments": list(self.inference_deployments),
            **({"tenantId": self.tenant_id} if self.tenant_id else {}),
        }


# Two accounts in different subscriptions and regions, so cross-region deploys can be tried.
DEMO_ACCOUNTS = (
    LocalAccount(
        alias="main",
        subscription_id="0b1f6471-1bf0-4dda-aec3-cb9272f09590",
        resource_group="rg-openai",
        account_name="aoai-swedencentral",
        location="swedencentral",
        models=(
            "gpt-4o-mini-2024-07-18.ft-7c1d2a3b4e5f",
            "gpt-4.1-mini-2025-04-14.ft-0a9b8c7d6e5f",
            "ftchkpt-e559c011ecc04fc68eaa339d8227d02d",
        ),
        # A vision-capable deployment ready for chat and process_image.
        deployments=(
            {
                "name": "vision",
                "model": {"format": "OpenAI", "name": "gpt-4o", "version": "2024-08-06"},
                "sku": {"name": "GlobalStandard", "capacity": 10},
            },
        ),
        fine_tuning_jobs=(
            {
                "id": "ftjob-4f2a9c1e7b3d4e5fa6b7c8d9e0f1a2b3",
                "model": "gpt-4o-mini-2024-07-18",
                "status": "succeeded",
                "fineTunedModel": "gpt-4o-mini-2024-07-18.ft-4f2a9c1e7b3d",
                "checkpoints": [
                    {"id": "ftchkpt-0a1b2c3d4e5f60718293a4b5c6d7e8f9", "step": 100},
                    {"id": "ftchkpt-1b2c3d4e5f60718293a4b5c6d7e8f90a", "step": 200},
                ],
            },
            {"id": "ftjob-9e8d7c6b5a4f4e3d2c1b0a9f8e7d6c5b", "model": "gpt-4.1-mini-2025-04-14", "status": "running"},
        ),
    ),
    LocalAccount(
        alias="east",
        subscription_id="5f3c2b1a-9e8d-4c7b-a6f5-e4d3c2b1a098",
        resource_group="rg-openai-east",
        account_name="aoai-eastus2",
        location="eastus2",
        models=("gpt-4o-2024-08-06.ft-3e4f5a6b7c8d",),
        # Fine-tuned deployments of two teams, so the platform page (/api/dashboard) shows more than one account.
        deployments=(
            {
                "name": "east-chat",
                "model": {"format": "OpenAI", "name": "gpt-4o-2024-08-06.ft-3e4f5a6b7c8d", "version": "1"},
                "sku": {"name": "Standard", "capacity": 2},
                "tags": {"team": "support", "keepAlive": "true"},
            },
            {
                "name": "east-reports",
                "model": {"format": "OpenAI", "name": "gpt-4o-2024-08-06.ft-3e4f5a6b7c8d", "version": "1"},
                "sku": {"name": "GlobalStandard", "capacity": 5},
                "tags": {"team": "analytics", "expiresAt": "2027-06-30T00:00:00Z"},
            },
            {
                "name": "east-trial",
                "model": {"format": "OpenAI", "name": "gpt-4o-2024-08-06.ft-3e4f5a6b7c8d", "version": "1"},
                "sku": {"name": "DeveloperTier", "capacity": 1},
                "tags": {"team": "research"},
            },
        ),
        # Only this deployment may be called through the service on this account.
        inference_deployments=("east-chat",),
    ),
)


@dataclass(frozen=True)
class LocalProject:
    """A Foundry project (an Azure ML workspace) as both sides see it: an alias for the service, a workspace with
    registered models for the simulator."""

    alias: str
    subscription_id: str
    resource_group: str
    workspace_name: str
    location: str
    workspace_id: str
    models: tuple[dict[str, Any], ...] = ()
    catalog: tuple[str, ...] = ()

    def simulator_entry(self) -> dict[str, Any]:
        return {
            "subscriptionId": self.subscription_id,
            "resourceGroup": self.resource_group,
            "workspaceName": self.workspace_name,
            "location": self.location,
            "workspaceId": self.workspace_id,
            "models": list(self.models),
            "catalog": list(self.catalog),
        }

    def service_entry(self) -> dict[str, Any]:
        return {
            "subscriptionId": self.subscription_id,
            "resourceGroup": self.resource_group,
            "workspaceName": self.workspace_name,
        }


LLAMA_CATALOG_MODEL = "azureml://registries/Meta/models/Meta-Llama-3.1-8B-Instruct"
# One project with a fine-tuned Phi model (Microsoft's registry: no marketplace subscription) and a fine-tuned
# Llama model (Meta's: its base model's marketplace subscription comes first).
DEMO_PROJECTS = (
    LocalProject(
        alias="foundry",
        subscription_id="0b1f6471-1bf0-4dda-aec3-cb9272f09590",
        resource_group="rg-foundry",
        workspace_name="proj-support",
        location="eastus2",
        workspace_id="7d1f0c5e-2b3a-4c4d-9e8f-a1b2c3d4e5f6",
        models=(
            {"name": "phi-4-mini-support-ft", "versions": ["1", "2"]},
            {"name": "llama-3-1-8b-support-ft", "versions": ["1"], "baseModel": LLAMA_CATALOG_MODEL},
        ),
        catalog=(LLAMA_CATALOG_MODEL, "azureml://registries/azureml/models/Phi-4-mini-instruct"),
    ),
)


def simulator_config(
    accounts: tuple[LocalAccount, ...] = DEMO_ACCOUNTS,
    projects: tuple[LocalProject, ...] = DEMO_PROJECTS,
    **overrides: Any,
) -> dict[str, Any]:
    return {
        "accounts": [account.simulator_entry() for account in accounts],
        "foundryProjects": [project.simulator_entry() for project in projects],
        **overrides,
    }


def entra_environment(entra_url: str | None, ca_bundle: str | None) -> dict[str, str]:
    """What points azure-identity at the simulator's Entra endpoint (HTTPS, a throwaway CA) and names the home
    tenant; empty when the simulator serves no Entra endpoint."""
    if not entra_url or not ca_bundle:
        return {}
    return {
        "AZURE_AUTHORITY_HOST": entra_url,
        "REQUESTS_CA_BUNDLE": ca_bundle,
        "SSL_CERT_FILE": ca_bundle,
        "HOME_TENANT_ID": DEFAULT_TENANT_ID,
    }


def service_environment(
    simulator_url: str,
    identity_header: str,
    accounts: tuple[LocalAccount, ...] = DEMO_ACCOUNTS,
    **overrides: str,
) -> dict[str, str]:
    """App settings that point the unmodified app (and azure-identity) at the simulator."""
    return {
        "AZURE_OPENAI_ACCOUNTS": json.dumps(
            {account.alias: account.service_entry(simulator_url) for account in accounts}
        ),
        "DEFAULT_ACCOUNT": accounts[0].alias,
        "FOUNDRY_PROJECTS": json.dumps({project.alias: project.service_entry() for project in DEMO_PROJECTS}),
        "ARM_ENDPOINT": simulator_url,
        # The App Service managed-identity protocol, as the Functions platform sets it.
        "IDENTITY_ENDPOINT": f"{simulator_url}/msi/token",
        "IDENTITY_HEADER": identity_header,
        "PYTHON_ENABLE_INIT_INDEXING": "1",
        "IMAGE_ANALYSIS_DEPLOYMENT": "vision",
        **overrides,
    }


@dataclass
class Started:
    """A child process serving HTTP on loopback, and the base URL it reported."""

    process: subprocess.Popen[bytes]
    url: str
    entra_url: str | None = None  # the simulator's HTTPS Entra endpoint
    ca_bundle: str | None = None  # the CA file that makes it trusted


# Each child binds port 0 and reports the port it got, so no other process can take it in between.
_SIMULATOR_READY = re.compile(rb"Azure simulator listening on (http://127\.0\.0\.1:\d+)")
_HOST_READY = re.compile(rb"Uvicorn running on (http://127\.0\.0\.1:\d+)")
_ENTRA_READY = re.compile(rb"Entra endpoint listening on (https://127\.0\.0\.1:\d+)\s+CA bundle: (\S+)")


def start_simulator(config_path: Path, identity_header: str, log_path: Path, *, port: int = 0) -> Started:
    command = [
        sys.executable,
        "-m",
        "localdev.simulator",
        "--port",
        str(port),
        "--config",
        str(config_path),
        f"--identity-header={identity_header}",  # one argument even when the secret starts with '-'
        "--tls-dir",
        str(log_path.parent / "simulator-tls"),
    ]
    offset = log_path.stat().st_size if log_path.exists() else 0
    started = _start(command, dict(os.environ), _SIMULATOR_READY, log_path)
    entra = None
    deadline = time.monotonic() + 5  # printed right after the ready line
    while entra is None and time.monotonic() < deadline:
        with open(log_path, "rb") as log:
            log.seek(offset)
            entra = _ENTRA_READY.search(log.read())
        if entra is None:
            time.sleep(0.02)
    if entra:
        started.entra_url, started.ca_bundle = entra.group(1).decode(), entra.group(2).decode()
    return started


def start_host(
    environment: Mapping[str, str], log_path: Path, *, port: int = 0, extra_args: tuple[str, ...] = ()
) -> Started:
    command = [
        sys.executable,
        "-m",
        "localdev.host",
        "--port",
        str(port),
        # No local.settings.json: the settings are exactly the given environment.
        "--settings",
        os.devnull,
        *extra_args,
    ]
    return _start(command, dict(environment), _HOST_READY, log_path)


def _start(command: list[str], environment: dict[str, str], ready: re.Pattern[bytes], log_path: Path) -> Started:
    offset = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as output:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=environment, stdout=output, stderr=output)
    try:
        url = _wait_ready(process, ready, log_path, offset)
    except BaseException:  # a signal or Ctrl+C while waiting must not leave the child behind
        stop(process)
        raise
    if url is None:
        stop(process)
        raise RuntimeError(f"{' '.join(command[1:4])} did not start; see {log_path}:\n{_tail(log_path, offset)}")
    return Started(process, url)


def _wait_ready(process: subprocess.Popen[bytes], ready: re.Pattern[bytes], log_path: Path, offset: int) -> str | None:
    deadline = time.monotonic() + 60  # generous: a loaded 2-core CI box can be slow to import
    while time.monotonic() < deadline:
        with open(log_path, "rb") as log:
            log.seek(offset)
            match = ready.search(log.read())
        if match:
            return match.group(1).decode()
        if process.poll() is not None:
            return None
        time.sleep(0.05)
    return None


def _tail(log_path: Path, offset: int, lines: int = 20) -> str:
    """The last lines the child wrote, for the error message (the log may live in a folder about to go)."""
    with open(log_path, "rb") as log:
        log.seek(offset)
        text = log.read().decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 30) -> bool:
    """Whether `process` accepts connections on `port` within `timeout` (False as soon as it exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False
