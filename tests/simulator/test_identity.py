"""The managed-identity endpoint, driven by the real azure-identity ManagedIdentityCredential."""

from __future__ import annotations

import time

import jwt
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ManagedIdentityCredential

from localdev.simulator import RunningSimulator
from localdev.simulator.control_client import SimulatorControl

from .conftest import ACCOUNT, IDENTITY_SECRET, RG, SUB, Arm

MANAGEMENT_SCOPE = "https://management.azure.com/.default"


@pytest.fixture
def app_service_env(simulator: RunningSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", simulator.token_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", IDENTITY_SECRET)
    for unrelated in ("MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT"):
        monkeypatch.delenv(unrelated, raising=False)


def claims_of(token: str) -> dict[str, object]:
    decoded: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return decoded


@pytest.mark.usefixtures("app_service_env")
def test_real_credential_gets_a_token_that_arm_accepts(simulator: RunningSimulator, control: SimulatorControl) -> None:
    config = control.get_config()
    token = ManagedIdentityCredential().get_token(MANAGEMENT_SCOPE)

    claims = claims_of(token.token)
    assert claims["aud"] == "https://management.azure.com"
    assert claims["iss"] == f"https://sts.windows.net/{config['tenantId']}/"
    assert claims["tid"] == config["tenantId"]
    assert claims["oid"] == config["principalId"]
    assert claims["idtyp"] == "app"
    assert abs(token.expires_on - (time.time() + 3600)) < 10

    listed = requests.get(
        f"{simulator.base_url}/subscriptions/{SUB}/resourceGroups/{RG}"
        f"/providers/Microsoft.CognitiveServices/accounts/{ACCOUNT}/deployments",
        params={"api-version": "2024-10-01"},
        headers={"Authorization": f"Bearer {token.token}"},
        timeout=10,
    )
    assert listed.status_code == 200, listed.text
    assert control.stats()["tokenRequests"] == {"https://management.azure.com": 1}


@pytest.mark.usefixtures("app_service_env")
def test_user_assigned_identity_has_a_stable_principal_derived_from_its_client_id(
    control: SimulatorControl,
) -> None:
    client_id = "5b7c0c9e-2a4e-4d3f-9a51-0f6f4c7f6a11"
    first = claims_of(ManagedIdentityCredential(client_id=client_id).get_token(MANAGEMENT_SCOPE).token)
    second = claims_of(ManagedIdentityCredential(client_id=client_id).get_token(MANAGEMENT_SCOPE).token)
    assert first["appid"] == client_id
    assert first["oid"] == second["oid"]
    assert first["oid"] != control.get_config()["principalId"]
    assert control.requests("identity")[0]["query"]["client_id"] == client_id


@pytest.mark.usefixtures("app_service_env")
def test_audience_is_the_requested_resource_and_arm_refuses_other_audiences(arm: Arm) -> None:
    token = ManagedIdentityCredential().get_token("https://cognitiveservices.azure.com/.default")
    assert claims_of(token.token)["aud"] == "https://cognitiveservices.azure.com"

    refused = arm.call("GET", arm.deployments(), token=token.token)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"


def test_wrong_or_missing_identity_header_is_401(simulator: RunningSimulator) -> None:
    params = {"api-version": "2019-08-01", "resource": "https://management.azure.com"}
    for headers in ({}, {"X-IDENTITY-HEADER": "not-the-secret"}):
        response = requests.get(simulator.token_endpoint, params=params, headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json()["statusCode"] == 401
        assert response.json()["message"]


def test_missing_api_version_or_resource_is_400(simulator: RunningSimulator) -> None:
    headers = {"X-IDENTITY-HEADER": IDENTITY_SECRET}
    for params in ({"resource": "https://management.azure.com"}, {"api-version": "2019-08-01"}):
        response = requests.get(simulator.token_endpoint, params=params, headers=headers, timeout=10)
        assert response.status_code == 400
        assert response.json()["statusCode"] == 400


@pytest.mark.usefixtures("app_service_env")
def test_wrong_secret_makes_the_real_credential_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDENTITY_HEADER", "wrong")
    with pytest.raises(ClientAuthenticationError):
        ManagedIdentityCredential().get_token(MANAGEMENT_SCOPE)


@pytest.mark.usefixtures("app_service_env")
def test_identity_latency_is_applied(control: SimulatorControl) -> None:
    control.patch_config({"identityLatencyMs": 300})
    started = time.monotonic()
    ManagedIdentityCredential().get_token(MANAGEMENT_SCOPE)
    assert time.monotonic() - started >= 0.3


@pytest.mark.usefixtures("app_service_env")
def test_identity_503_fault_is_retried_by_the_real_credential(control: SimulatorControl) -> None:
    fault_id = control.add_fault(scope="identity", status=503, retryAfter=0)
    token = ManagedIdentityCredential().get_token(MANAGEMENT_SCOPE)

    assert claims_of(token.token)["aud"] == "https://management.azure.com"
    logged = control.requests("identity")
    assert [(entry["status"], entry["fault"]) for entry in logged] == [(503, fault_id), (200, None)]
