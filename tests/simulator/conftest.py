"""One simulator per test session, served by uvicorn on a free loopback port; config reset before each test."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from localdev.simulator import RunningSimulator, start_in_thread
from localdev.simulator.control_client import SimulatorControl

IDENTITY_SECRET = "simulator-test-secret"
ARM_RESOURCE = "https://management.azure.com"
API_VERSION = "2024-10-01"
SUB = "11111111-aaaa-4bbb-8ccc-000000000001"
RG = "rg-models"
ACCOUNT = "aoai-main"
SOURCE_SUB = "11111111-aaaa-4bbb-8ccc-000000000002"
SOURCE_RG = "rg-training"
SOURCE_ACCOUNT = "aoai-training"
FT_MODEL = "gpt-4o-mini-2024-07-18.ft-abc123"
SOURCE_ONLY_MODEL = "gpt-4.1-mini-2025-04-14.ft-def456"
FAILING_MODEL = "gpt-4.1-2025-04-14.ft-broken"
DELAY = 0.3

BASE_CONFIG: dict[str, Any] = {
    "provisioningDelaySeconds": DELAY,
    "retryAfterSeconds": 0,
    "accounts": [
        {
            "subscriptionId": SUB,
            "resourceGroup": RG,
            "accountName": ACCOUNT,
            "quota": 100,
            "models": [FT_MODEL, FAILING_MODEL, "gpt-4o-mini"],
            "failingModels": [FAILING_MODEL],
        },
        {
            "subscriptionId": SOURCE_SUB,
            "resourceGroup": SOURCE_RG,
            "accountName": SOURCE_ACCOUNT,
            "location": "northcentralus",
            "models": [SOURCE_ONLY_MODEL],
        },
    ],
}


def account_id(sub: str = SUB, rg: str = RG, account: str = ACCOUNT) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.CognitiveServices/accounts/{account}"


def deployment_body(model: str = FT_MODEL, sku: str = "Standard", capacity: int = 1, **model_extra: str) -> Any:
    return {
        "sku": {"name": sku, "capacity": capacity},
        "properties": {"model": {"format": "OpenAI", "name": model, "version": "1", **model_extra}},
    }


@dataclass
class Arm:
    """A thin ARM client over requests, the way a hand-written service client talks to ARM."""

    base_url: str
    token: str
    session: requests.Session = field(default_factory=requests.Session)

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.base_url}{path}"

    def deployments(self, account: str = ACCOUNT, sub: str = SUB, rg: str = RG) -> str:
        return f"{account_id(sub, rg, account)}/deployments"

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        api_version: str | None = API_VERSION,
        headers: dict[str, str] | None = None,
        token: str | None = None,
    ) -> requests.Response:
        params = {"api-version": api_version} if api_version and "api-version=" not in path else None
        sent = {"Authorization": f"Bearer {token or self.token}", **(headers or {})}
        return self.session.request(method, self.url(path), params=params, json=body, headers=sent, timeout=10)

    def put(self, name: str, body: Any, account: str = ACCOUNT) -> requests.Response:
        return self.call("PUT", f"{self.deployments(account)}/{name}", body)

    def get(self, name: str, account: str = ACCOUNT) -> requests.Response:
        return self.call("GET", f"{self.deployments(account)}/{name}")

    def patch(self, name: str, body: Any) -> requests.Response:
        return self.call("PATCH", f"{self.deployments()}/{name}", body)

    def delete(self, name: str) -> requests.Response:
        return self.call("DELETE", f"{self.deployments()}/{name}")

    def state_of(self, name: str) -> str:
        return str(self.get(name).json()["properties"]["provisioningState"])

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "condition not met in time"
            time.sleep(0.05)

    def create_ready(self, name: str, capacity: int = 1, model: str = FT_MODEL) -> None:
        assert self.put(name, deployment_body(model=model, capacity=capacity)).status_code == 201
        self.wait_until(lambda: self.state_of(name) == "Succeeded")


def fetch_token(base_url: str, resource: str = ARM_RESOURCE, secret: str = IDENTITY_SECRET, **extra: str) -> str:
    response = requests.get(
        f"{base_url}/msi/token",
        params={"api-version": "2019-08-01", "resource": resource, **extra},
        headers={"X-IDENTITY-HEADER": secret},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


@pytest.fixture(scope="session")
def simulator() -> Iterator[RunningSimulator]:
    with start_in_thread(BASE_CONFIG, identity_header=IDENTITY_SECRET) as running:
        yield running


@pytest.fixture
def control(simulator: RunningSimulator) -> Iterator[SimulatorControl]:
    client = SimulatorControl(simulator.base_url)
    client.set_config(BASE_CONFIG)  # a fresh start: seeded state, no faults, empty log
    yield client
    client.close()


@pytest.fixture
def arm(simulator: RunningSimulator, control: SimulatorControl) -> Iterator[Arm]:
    client = Arm(simulator.base_url, fetch_token(simulator.base_url))
    control.clear_requests()  # the token fetch above is setup, not the test's traffic
    yield client
    client.session.close()
