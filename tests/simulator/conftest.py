"""One simulator per test session, served by uvicorn on a free loopback port; config reset before each test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import openai
import pytest
import requests
from azure.identity import ManagedIdentityCredential, get_bearer_token_provider

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


# --- the Azure OpenAI data plane ------------------------------------------------------------------

COGNITIVE_SCOPE = "https://cognitiveservices.azure.com/.default"
DATA_PLANE_API_VERSION = "2024-10-21"
DP_ACCOUNT = "aoai-dataplane"
CHAT_DEPLOYMENT = "chat"
CHAT_MODEL = "gpt-4o-mini"
BASE_MODEL = "gpt-4o-mini-2024-07-18"
SUCCEEDED_JOB = "ftjob-5f1e0c7a9b2d4e6f"
SUCCEEDED_JOB_MODEL = f"{BASE_MODEL}.ft-5f1e0c7a9b2d4e6f"
CHECKPOINT_IDS = ("ftchkpt-aaa010", "ftchkpt-aaa020", "ftchkpt-aaa030")
RUNNING_JOB = "ftjob-running01"
FAILED_JOB = "ftjob-failed01"

DATAPLANE_CONFIG: dict[str, Any] = {
    "provisioningDelaySeconds": DELAY,
    "retryAfterSeconds": 0,
    "accounts": [
        {
            "subscriptionId": SUB,
            "resourceGroup": RG,
            "accountName": DP_ACCOUNT,
            "location": "eastus2",
            "models": [CHAT_MODEL],
            "deployments": [
                {
                    "name": CHAT_DEPLOYMENT,
                    "model": {"format": "OpenAI", "name": CHAT_MODEL, "version": "2024-07-18"},
                    "sku": {"name": "GlobalStandard", "capacity": 10},
                }
            ],
            "fineTuningJobs": [
                {
                    "id": SUCCEEDED_JOB,
                    "model": BASE_MODEL,
                    "status": "succeeded",
                    "suffix": "support",
                    "checkpoints": [
                        {"id": checkpoint_id, "step": 10 * (index + 1)}
                        for index, checkpoint_id in enumerate(CHECKPOINT_IDS)
                    ],
                },
                {"id": RUNNING_JOB, "model": BASE_MODEL, "status": "running", "checkpoints": [{"step": 5}]},
                {
                    "id": FAILED_JOB,
                    "model": BASE_MODEL,
                    "status": "failed",
                    "error": {"code": "invalidTrainingFile", "message": "Line 3 is not valid JSON."},
                },
            ],
        }
    ],
}


@dataclass
class DataPlane:
    """The data-plane account of DATAPLANE_CONFIG, reached the way the service reaches Azure OpenAI."""

    base_url: str
    token_provider: Callable[[], str]
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def endpoint(self) -> str:
        return f"{self.base_url}/dataplane/{DP_ACCOUNT}"

    def client(self, **options: Any) -> openai.AzureOpenAI:
        return openai.AzureOpenAI(
            azure_endpoint=self.endpoint,
            azure_ad_token_provider=self.token_provider,
            api_version=DATA_PLANE_API_VERSION,
            **options,
        )

    def async_client(self, **options: Any) -> openai.AsyncAzureOpenAI:
        sync_provider = self.token_provider

        async def provider() -> str:
            # azure.identity.aio needs aiohttp, which is not installed; the sync credential in a thread
            # is the same token source.
            return await asyncio.to_thread(sync_provider)

        return openai.AsyncAzureOpenAI(
            azure_endpoint=self.endpoint,
            azure_ad_token_provider=provider,
            api_version=DATA_PLANE_API_VERSION,
            **options,
        )

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        api_version: str | None = DATA_PLANE_API_VERSION,
        headers: dict[str, str] | None = None,
        account: str = DP_ACCOUNT,
    ) -> requests.Response:
        """A raw call, for what the SDK would not send; `headers` replace the bearer token when given."""
        sent = headers if headers is not None else {"Authorization": f"Bearer {self.token_provider()}"}
        params = {"api-version": api_version} if api_version else None
        url = f"{self.base_url}/dataplane/{account}/openai{path}"
        return self.session.request(method, url, params=params, json=body, headers=sent, timeout=30)

    def chat(self, body: Any, deployment: str = CHAT_DEPLOYMENT, **options: Any) -> requests.Response:
        return self.call("POST", f"/deployments/{deployment}/chat/completions", body, **options)


@pytest.fixture
def dataplane(
    simulator: RunningSimulator, control: SimulatorControl, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DataPlane]:
    """DATAPLANE_CONFIG loaded, and a token provider backed by the real ManagedIdentityCredential."""
    control.set_config(DATAPLANE_CONFIG)
    monkeypatch.setenv("IDENTITY_ENDPOINT", simulator.token_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", IDENTITY_SECRET)
    for unrelated in ("MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT"):
        monkeypatch.delenv(unrelated, raising=False)
    credential = ManagedIdentityCredential()
    provider = get_bearer_token_provider(credential, COGNITIVE_SCOPE)
    provider()  # fetch once now, so the test's own traffic starts with a cached token
    control.clear_requests()
    data_plane = DataPlane(simulator.base_url, provider)
    yield data_plane
    data_plane.session.close()
    credential.close()


class ClockedCreate:
    """The simulator's state on a clock the test sets, with one deployment whose creation has started at
    `start` and lasts `duration` seconds: no reading can land late on a busy machine."""

    def __init__(self, name: str, start: float, duration: float) -> None:
        from localdev.simulator.config import ModelSpec, SeedDeployment, parse_config
        from localdev.simulator.state import Deployment, OperationKind, SimulatorState

        self.now = start
        self.state = SimulatorState(parse_config(BASE_CONFIG), lambda: self.now)
        account = next(iter(self.state.accounts.values()))
        self.deployment = Deployment.from_seed(SeedDeployment(name, ModelSpec("OpenAI", FT_MODEL, "1"), "Standard", 1))
        account.deployments[name] = self.deployment
        self.operation = self.state.start_operation(OperationKind.CREATE, account, self.deployment, duration=duration)
