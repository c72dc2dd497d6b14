"""What ARM checks before any resource provider runs: token, api-version, standard headers, routing."""

from __future__ import annotations

import time

import pytest
import requests

from localdev.simulator import RunningSimulator
from localdev.simulator.control_client import SimulatorControl

from .conftest import ACCOUNT, RG, SUB, Arm, fetch_token


def error_code(response: requests.Response) -> str:
    return str(response.json()["error"]["code"])


def test_missing_token_is_authentication_failed(arm: Arm) -> None:
    response = arm.session.get(arm.url(arm.deployments()), params={"api-version": "2024-10-01"}, timeout=10)
    assert response.status_code == 401
    assert error_code(response) == "AuthenticationFailed"
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["details"] == []


@pytest.mark.parametrize("token", ["garbage", "eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJ4In0.c2lnbmF0dXJl"])
def test_garbage_or_foreign_token_is_invalid(arm: Arm, token: str) -> None:
    response = arm.call("GET", arm.deployments(), token=token)
    assert response.status_code == 401
    assert error_code(response) == "InvalidAuthenticationToken"
    assert "WWW-Authenticate" in response.headers


def test_token_for_another_resource_has_the_wrong_audience(arm: Arm, simulator: RunningSimulator) -> None:
    token = fetch_token(simulator.base_url, resource="https://cognitiveservices.azure.com")
    response = arm.call("GET", arm.deployments(), token=token)
    assert response.status_code == 401
    assert error_code(response) == "InvalidAuthenticationTokenAudience"
    assert "https://cognitiveservices.azure.com" in response.json()["error"]["message"]


@pytest.mark.parametrize("audience", ["https://management.azure.com/", "https://management.core.windows.net/"])
def test_other_arm_audiences_are_accepted(arm: Arm, simulator: RunningSimulator, audience: str) -> None:
    token = fetch_token(simulator.base_url, resource=audience)
    assert arm.call("GET", arm.deployments(), token=token).status_code == 200


def test_expired_token_is_refused(arm: Arm, simulator: RunningSimulator, control: SimulatorControl) -> None:
    control.patch_config({"tokenLifetimeSeconds": 0})
    token = fetch_token(simulator.base_url)
    time.sleep(0.01)
    response = arm.call("GET", arm.deployments(), token=token)
    assert response.status_code == 401
    assert error_code(response) == "ExpiredAuthenticationToken"


def test_tokens_stay_valid_across_config_changes(arm: Arm, control: SimulatorControl) -> None:
    control.set_config({"accounts": [{"subscriptionId": SUB, "resourceGroup": RG, "accountName": ACCOUNT}]})
    assert arm.call("GET", arm.deployments()).status_code == 200


def test_missing_api_version(arm: Arm) -> None:
    response = arm.call("GET", arm.deployments(), api_version=None)
    assert response.status_code == 400
    assert error_code(response) == "MissingApiVersionParameter"
    assert response.json()["error"]["message"] == (
        "The api-version query parameter (?api-version=) is required for all requests."
    )


def test_data_plane_api_version_is_rejected(arm: Arm) -> None:
    response = arm.call("GET", arm.deployments(), api_version="2024-10-21")
    assert response.status_code == 400
    assert error_code(response) == "InvalidApiVersionParameter"
    assert "2024-10-01" in response.json()["error"]["message"]


def test_api_versions_follow_the_config(arm: Arm, control: SimulatorControl) -> None:
    control.patch_config({"apiVersions": ["2025-06-01"]})
    assert arm.call("GET", arm.deployments(), api_version="2024-10-01").status_code == 400
    assert arm.call("GET", arm.deployments(), api_version="2025-06-01").status_code == 200


def test_standard_response_headers(arm: Arm) -> None:
    sent = {"x-ms-client-request-id": "client-1", "x-ms-correlation-request-id": "corr-1"}
    read = arm.call("GET", arm.deployments(), headers=sent)
    assert read.headers["x-ms-client-request-id"] == "client-1"
    assert read.headers["x-ms-correlation-request-id"] == "corr-1"
    assert read.headers["x-ms-request-id"]
    assert int(read.headers["x-ms-ratelimit-remaining-subscription-reads"]) > 0

    write = arm.delete("does-not-exist")
    assert write.status_code == 204
    assert write.headers["x-ms-correlation-request-id"] not in ("", "corr-1")
    assert "x-ms-client-request-id" not in write.headers
    assert int(write.headers["x-ms-ratelimit-remaining-subscription-writes"]) > 0


def test_paths_match_case_insensitively(arm: Arm) -> None:
    arm.create_ready("casing")
    path = (
        f"/SUBSCRIPTIONS/{SUB}/resourcegroups/{RG.upper()}/providers/microsoft.cognitiveservices"
        f"/accounts/{ACCOUNT.upper()}/DEPLOYMENTS/CASING"
    )
    response = arm.call("GET", path)
    assert response.status_code == 200
    assert response.json()["name"] == "casing"
    assert response.json()["id"].endswith(f"/accounts/{ACCOUNT}/deployments/casing")


def test_unknown_account_and_deployment(arm: Arm) -> None:
    missing_account = arm.call("GET", arm.deployments(account="nope"))
    assert missing_account.status_code == 404
    assert error_code(missing_account) == "ResourceNotFound"
    assert missing_account.json()["error"]["message"].startswith(
        f"The Resource 'Microsoft.CognitiveServices/accounts/nope' under resource group '{RG}' was not found."
    )
    for response in (
        arm.get("ghost"),
        arm.patch("ghost", {"sku": {"name": "Standard", "capacity": 2}}),
        arm.call("GET", f"{arm.deployments()}/ghost/skus"),
    ):
        assert response.status_code == 404
        assert error_code(response) == "DeploymentNotFound"
