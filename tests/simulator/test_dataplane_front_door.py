"""The data plane's front door: accounts, authentication, api-version, deployments that come and go, faults."""

from __future__ import annotations

import openai
import pytest
import requests

from localdev.simulator import RunningSimulator
from localdev.simulator.control_client import SimulatorControl

from .conftest import (
    ACCOUNT,
    CHAT_DEPLOYMENT,
    CHAT_MODEL,
    DP_ACCOUNT,
    SUCCEEDED_JOB,
    Arm,
    DataPlane,
    deployment_body,
    fetch_token,
)

HELLO = {"messages": [{"role": "user", "content": "hello"}]}
DEPLOYMENT_NOT_FOUND = {
    "code": "DeploymentNotFound",
    "message": "The API deployment for this resource does not exist. If you created the deployment within the "
    "last 5 minutes, please wait a moment and try again.",
}


def test_unknown_account_is_resource_not_found(dataplane: DataPlane) -> None:
    response = dataplane.chat(HELLO, account="aoai-nowhere")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "404", "message": "Resource not found"}}
    assert response.headers["apim-request-id"]
    assert "x-ms-region" not in response.headers


def test_unknown_path_and_wrong_method_are_resource_not_found(dataplane: DataPlane) -> None:
    for method, path in (("GET", "/models"), ("GET", f"/deployments/{CHAT_DEPLOYMENT}/chat/completions")):
        response = dataplane.call(method, path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "404"


def test_api_key_is_refused(dataplane: DataPlane, control: SimulatorControl) -> None:
    client = openai.AzureOpenAI(
        azure_endpoint=dataplane.endpoint, api_key="not-used-anywhere", api_version="2024-10-21", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model=CHAT_DEPLOYMENT, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 401
    assert caught.value.code == "AuthenticationTypeDisabled"
    assert caught.value.message.endswith("Key based authentication is disabled for this resource.")

    # Even next to a valid token: a key must never be sent.
    both = dataplane.chat(
        HELLO, headers={"Authorization": f"Bearer {dataplane.token_provider()}", "api-key": "some-key"}
    )
    assert both.status_code == 401
    assert both.json()["error"]["code"] == "AuthenticationTypeDisabled"
    assert control.requests("dataplane")[0]["status"] == 401


def test_missing_or_malformed_authorization_is_401(dataplane: DataPlane) -> None:
    missing = dataplane.chat(HELLO, headers={})
    assert missing.status_code == 401
    error = missing.json()["error"]
    assert error["code"] == "401"
    assert error["message"].startswith("Access denied due to missing subscription key or proper Authorization header.")
    for authorization in ("Bearer not-a-jwt", "Basic dXNlcjpwYXNz"):
        refused = dataplane.chat(HELLO, headers={"Authorization": authorization})
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "401"
    garbled = dataplane.chat(HELLO, headers={"Authorization": "Bearer x.y.z"}).json()["error"]["message"]
    assert garbled.endswith("The access token is invalid.")


def test_token_for_another_audience_is_refused(simulator: RunningSimulator, dataplane: DataPlane) -> None:
    arm_token = fetch_token(simulator.base_url)  # audience https://management.azure.com
    client = openai.AzureOpenAI(
        azure_endpoint=dataplane.endpoint,
        azure_ad_token_provider=lambda: arm_token,
        api_version="2024-10-21",
        max_retries=0,
    )
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model=CHAT_DEPLOYMENT, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "401"
    assert "wrong audience" in caught.value.message
    assert "https://management.azure.com" in caught.value.message


@pytest.mark.parametrize(
    "resource", ["https://cognitiveservices.azure.com/", "https://ai.azure.com", "https://ai.azure.com/"]
)
def test_other_accepted_audiences(simulator: RunningSimulator, dataplane: DataPlane, resource: str) -> None:
    token = fetch_token(simulator.base_url, resource=resource)
    assert dataplane.chat(HELLO, headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_expired_token_is_refused(simulator: RunningSimulator, dataplane: DataPlane, control: SimulatorControl) -> None:
    control.patch_config({"tokenLifetimeSeconds": 0})
    token = fetch_token(simulator.base_url, resource="https://cognitiveservices.azure.com")
    refused = dataplane.chat(HELLO, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401
    assert "expiry" in refused.json()["error"]["message"]


def test_api_version_is_required_and_must_be_supported(dataplane: DataPlane, control: SimulatorControl) -> None:
    missing = dataplane.chat(HELLO, api_version=None)
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "404", "message": "Resource not found"}}

    unsupported = dataplane.chat(HELLO, api_version="2023-01-01")
    assert unsupported.status_code == 400
    assert unsupported.json() == {"error": {"code": "BadRequest", "message": "API version not supported"}}

    assert dataplane.chat(HELLO, api_version="2025-04-01-preview").status_code == 200
    control.patch_config({"dataPlaneApiVersions": ["2024-10-21"]})
    assert dataplane.chat(HELLO, api_version="2025-04-01-preview").status_code == 400


_PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
_IMAGE_PROMPT = [{"type": "text", "text": "Describe"}, {"type": "image_url", "image_url": {"url": _PNG}}]
_WITHOUT_API_VERSION = {
    "chat": ("POST", f"/deployments/{CHAT_DEPLOYMENT}/chat/completions", HELLO),
    "chat-stream": ("POST", f"/deployments/{CHAT_DEPLOYMENT}/chat/completions", {**HELLO, "stream": True}),
    # process_image's request: a prompt and an image in one user message
    "image-analysis": (
        "POST",
        f"/deployments/{CHAT_DEPLOYMENT}/chat/completions",
        {"messages": [{"role": "user", "content": _IMAGE_PROMPT}]},
    ),
    "fine-tuning-jobs": ("GET", "/fine_tuning/jobs", None),
    "fine-tuning-job": ("GET", f"/fine_tuning/jobs/{SUCCEEDED_JOB}", None),
    "fine-tuning-checkpoints": ("GET", f"/fine_tuning/jobs/{SUCCEEDED_JOB}/checkpoints", None),
}


@pytest.mark.parametrize("route", list(_WITHOUT_API_VERSION))
@pytest.mark.parametrize("api_version", [None, ""], ids=["absent", "empty"])
def test_every_route_without_an_api_version_is_not_found_as_in_azure(
    dataplane: DataPlane, route: str, api_version: str | None
) -> None:
    """Azure OpenAI's gateway routes on api-version: with none it finds no API and answers a bare 404."""
    method, path, body = _WITHOUT_API_VERSION[route]
    if api_version is None:
        answer = dataplane.call(method, path, body, api_version=None)
    else:
        url = f"{dataplane.endpoint}/openai{path}?api-version="
        headers = {"Authorization": f"Bearer {dataplane.token_provider()}"}
        answer = dataplane.session.request(method, url, json=body, headers=headers, timeout=30)
    assert answer.status_code == 404
    assert answer.json() == {"error": {"code": "404", "message": "Resource not found"}}
    # The same call with an api-version is served: the 404 is the missing version, not the route.
    assert dataplane.call(method, path, body).status_code == 200


def test_deployment_is_callable_only_while_arm_shows_it_succeeded(dataplane: DataPlane, arm: Arm) -> None:
    client = dataplane.client(max_retries=0)
    deployments = arm.deployments(DP_ACCOUNT)

    def ask() -> str | None:
        return client.chat.completions.create(model="late", messages=[{"role": "user", "content": "hi"}]).model

    def not_found() -> openai.NotFoundError:
        with pytest.raises(openai.NotFoundError) as caught:
            ask()
        return caught.value

    assert not_found().body == DEPLOYMENT_NOT_FOUND  # absent

    assert arm.call("PUT", f"{deployments}/late", deployment_body(model=CHAT_MODEL)).status_code == 201
    assert not_found().code == "DeploymentNotFound"  # still being created
    arm.wait_until(
        lambda: arm.call("GET", f"{deployments}/late").json()["properties"]["provisioningState"] == "Succeeded"
    )
    assert ask() == CHAT_MODEL

    # A scale change keeps the deployment serving while it runs.
    assert arm.call("PATCH", f"{deployments}/late", {"sku": {"name": "Standard", "capacity": 2}}).status_code == 202
    assert ask() == CHAT_MODEL

    arm.wait_until(
        lambda: arm.call("GET", f"{deployments}/late").json()["properties"]["provisioningState"] == "Succeeded"
    )
    assert arm.call("DELETE", f"{deployments}/late").status_code == 202
    assert not_found().code == "DeploymentNotFound"  # being deleted
    arm.wait_until(lambda: arm.call("GET", f"{deployments}/late").status_code == 404)
    assert not_found().code == "DeploymentNotFound"  # gone


def test_failed_deployment_is_not_callable(dataplane: DataPlane, arm: Arm, control: SimulatorControl) -> None:
    config = control.get_config()
    config["accounts"][0]["failingModels"] = ["gpt-4o-mini"]
    control.patch_config({"accounts": config["accounts"], "provisioningDelaySeconds": 0})
    put = arm.call("PUT", f"{arm.deployments(DP_ACCOUNT)}/broken", deployment_body(model=CHAT_MODEL))
    assert put.json()["properties"]["provisioningState"] == "Failed"
    assert dataplane.chat(HELLO, deployment="broken").json()["error"]["code"] == "DeploymentNotFound"


def test_deployments_of_the_arm_test_account_are_not_on_this_endpoint(dataplane: DataPlane) -> None:
    response = dataplane.chat(HELLO, account=ACCOUNT)
    assert response.status_code == 404  # ACCOUNT is not in DATAPLANE_CONFIG


def test_rate_limit_fault_carries_retry_headers_to_the_sdk(dataplane: DataPlane, control: SimulatorControl) -> None:
    fault_id = control.throttle_data_plane(retry_after_seconds=1)
    assert control.data_plane_endpoint(DP_ACCOUNT) == dataplane.endpoint
    client = dataplane.client(max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=CHAT_DEPLOYMENT, messages=[{"role": "user", "content": "hi"}])

    error = caught.value
    assert error.status_code == 429
    assert error.code == "429"
    assert error.message.endswith(
        "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded "
        "token rate limit of your current OpenAI S0 pricing tier. Please retry after 1 second."
    )
    assert error.response.headers["retry-after"] == "1"
    assert error.response.headers["retry-after-ms"] == "1000"
    assert error.response.headers["apim-request-id"]
    assert error.response.headers["x-ms-region"] == "eastus2"
    logged = control.requests("dataplane")
    assert [(entry["status"], entry["fault"]) for entry in logged] == [(429, fault_id)]


def test_sdk_retries_a_throttled_call_after_retry_after_ms(dataplane: DataPlane, control: SimulatorControl) -> None:
    control.add_fault(scope="dataplane", status=429, code="RateLimitReached", retryAfterMs=200, count=2)
    completion = dataplane.client(max_retries=2).chat.completions.create(
        model=CHAT_DEPLOYMENT, messages=[{"role": "user", "content": "eventually"}]
    )
    assert completion.choices[0].message.content == "echo: eventually"
    logged = control.requests("dataplane")
    assert [entry["status"] for entry in logged] == [429, 429, 200]
    assert logged[1]["time"] - logged[0]["time"] >= 0.15


def test_fault_with_code_and_message_uses_the_data_plane_shape(dataplane: DataPlane, control: SimulatorControl) -> None:
    control.add_fault(scope="dataplane", status=503, code="ServiceUnavailable", message="busy")
    response = dataplane.call("GET", "/fine_tuning/jobs")
    assert response.status_code == 503
    assert response.json() == {"error": {"code": "ServiceUnavailable", "message": "busy"}}


def test_data_plane_faults_leave_arm_and_identity_alone(
    simulator: RunningSimulator, dataplane: DataPlane, arm: Arm, control: SimulatorControl
) -> None:
    fault_id = control.add_fault(scope="dataplane", status=500, count=-1)
    assert arm.call("GET", arm.deployments(DP_ACCOUNT)).status_code == 200
    fetch_token(simulator.base_url)
    assert dataplane.chat(HELLO).json() == {"error": {"code": "500", "message": f"Simulated fault {fault_id}: 500."}}

    control.clear_faults()
    control.add_fault(scope="arm", status=500, count=-1)
    assert dataplane.chat(HELLO).status_code == 200


def test_stats_and_log_count_data_plane_requests(dataplane: DataPlane, control: SimulatorControl) -> None:
    client = dataplane.client()
    for _ in range(3):
        client.chat.completions.create(model=CHAT_DEPLOYMENT, messages=[{"role": "user", "content": "count me"}])
    stats = control.stats()
    assert stats["requests"]["dataplane"] == 3
    assert stats["requests"]["arm"] == 0
    assert stats["connections"] == 1  # the SDK keeps its connection alive
    assert stats["tokenRequests"] == {}  # the token fetched by the fixture is cached by the credential
    assert len(control.requests("dataplane")) == 3

    invalid = requests.get(f"{dataplane.base_url}/_sim/requests", params={"scope": "nowhere"}, timeout=10)
    assert invalid.status_code == 400
    assert "dataplane" in invalid.json()["error"]["message"]
