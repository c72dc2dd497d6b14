"""The simulated Foundry surface: workspace, models, serverless endpoints (LRO pairing, keys, one per custom
model), marketplace subscriptions, and each endpoint's data plane, driven over HTTP as ARM clients and the
azure-ai-inference / openai SDKs drive them."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest
import requests

from localdev.simulator.control_client import SimulatorControl

from .conftest import BASE_CONFIG, DELAY, SUB, Arm

RG = "rg-foundry"
WS = "proj-ft"
GUID = "0f0e0d0c-0b0a-4909-8807-060504030201"
LLAMA = "azureml://registries/Meta/models/Meta-Llama-3.1-8B-Instruct"
PHI = "azureml://registries/azureml/models/Phi-4-mini-instruct"
PROJECT = {
    "subscriptionId": SUB,
    "resourceGroup": RG,
    "workspaceName": WS,
    "location": "eastus2",
    "workspaceId": GUID,
    "models": [{"name": "phi-ft", "versions": ["1", "2"]}, {"name": "llama-ft", "baseModel": LLAMA}],
    "catalog": [LLAMA, PHI],
}
CONFIG = {**BASE_CONFIG, "foundryProjects": [PROJECT]}
WS_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices/workspaces/{WS}"
PHI_FT = f"azureml://locations/eastus2/workspaces/{GUID}/models/phi-ft/versions/2"
LLAMA_FT = f"azureml://locations/eastus2/workspaces/{GUID}/models/llama-ft/versions/1"
CHAT = {"messages": [{"role": "user", "content": "hello there"}]}


def body(model: str, **properties: Any) -> dict[str, Any]:
    return {
        "location": "eastus2",
        "sku": {"name": "Consumption"},
        "properties": {"modelSettings": {"modelId": model}, "authMode": "Key", **properties},
    }


@pytest.fixture
def foundry(arm: Arm, control: SimulatorControl) -> Arm:
    control.set_config(CONFIG)
    return arm


def ready(arm: Arm, name: str, model: str) -> dict[str, Any]:
    created = arm.call("PUT", f"{WS_ID}/serverlessEndpoints/{name}", body(model))
    assert created.status_code == 201, created.text
    arm.wait_until(
        lambda: arm.call("GET", f"{WS_ID}/serverlessEndpoints/{name}").json()["properties"]["endpointState"] == "Online"
    )
    result: dict[str, Any] = arm.call("GET", f"{WS_ID}/serverlessEndpoints/{name}").json()
    return result


def test_workspace_and_models_carry_what_model_ids_need(foundry: Arm) -> None:
    workspace = foundry.call("GET", WS_ID).json()
    assert workspace["location"] == "eastus2" and workspace["properties"]["workspaceId"] == GUID
    assert foundry.call("GET", f"{WS_ID}/models/phi-ft").json()["properties"]["latestVersion"] == "2"
    assert [v["name"] for v in foundry.call("GET", f"{WS_ID}/models/phi-ft/versions").json()["value"]] == ["1", "2"]
    assert foundry.call("GET", f"{WS_ID}/models/nope").status_code == 404
    missing = foundry.call("GET", WS_ID.replace(WS, "other") + "/serverlessEndpoints/x")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ParentResourceNotFound"


def test_put_pairs_async_operation_and_delete_pairs_location_with_retry_after(foundry: Arm) -> None:
    created = foundry.call("PUT", f"{WS_ID}/serverlessEndpoints/phi", body(PHI_FT))
    assert created.status_code == 201 and "Azure-AsyncOperation" in created.headers
    assert created.json()["properties"]["provisioningState"] == "Creating"
    status_url = created.headers["Azure-AsyncOperation"]
    assert foundry.call("GET", status_url).json()["status"] == "InProgress"
    time.sleep(DELAY + 0.05)
    assert foundry.call("GET", status_url).json()["status"] == "Succeeded"
    endpoint = foundry.call("GET", f"{WS_ID}/serverlessEndpoints/phi").json()
    assert endpoint["properties"]["endpointState"] == "Online" and endpoint["properties"]["inferenceEndpoint"]["uri"]
    deleting = foundry.call("DELETE", f"{WS_ID}/serverlessEndpoints/phi")
    assert deleting.status_code == 202 and int(deleting.headers["Retry-After"]) >= 1
    assert foundry.call("GET", deleting.headers["Location"]).status_code == 202
    time.sleep(DELAY + 0.05)
    assert foundry.call("GET", deleting.headers["Location"]).status_code == 204
    assert foundry.call("DELETE", f"{WS_ID}/serverlessEndpoints/phi").status_code == 204


def test_partner_models_need_their_marketplace_subscription_first(foundry: Arm) -> None:
    refused = foundry.call("PUT", f"{WS_ID}/serverlessEndpoints/llama", body(f"{LLAMA}/versions/3"))
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "MarketplaceSubscriptionRequired"
    fine_tuned = foundry.call("PUT", f"{WS_ID}/serverlessEndpoints/llama-ft", body(LLAMA_FT))
    assert fine_tuned.json()["error"]["code"] == "MarketplaceSubscriptionRequired"  # its base model is Meta's
    subscribed = foundry.call("PUT", f"{WS_ID}/marketplaceSubscriptions/llama", {"properties": {"modelId": LLAMA}})
    assert subscribed.status_code == 201
    assert subscribed.json()["properties"]["marketplaceSubscriptionStatus"] == "Subscribed"
    twice = foundry.call("PUT", f"{WS_ID}/marketplaceSubscriptions/again", {"properties": {"modelId": LLAMA}})
    assert twice.status_code == 409
    endpoint = ready(foundry, "llama-ft", LLAMA_FT)
    assert endpoint["properties"]["marketplaceSubscriptionId"].endswith("/marketplaceSubscriptions/llama")
    assert foundry.call("PUT", f"{WS_ID}/serverlessEndpoints/phi", body(f"{PHI}/versions/1")).status_code == 201


def test_one_endpoint_per_custom_model_and_no_model_change(foundry: Arm) -> None:
    ready(foundry, "phi", PHI_FT)
    second = foundry.call("PUT", f"{WS_ID}/serverlessEndpoints/phi-two", body(PHI_FT))
    assert second.status_code == 400 and "one serverless endpoint per custom model" in second.json()["error"]["message"]
    changed = foundry.call("PUT", f"{WS_ID}/serverlessEndpoints/phi", body(PHI_FT.replace("versions/2", "versions/1")))
    assert changed.status_code == 400 and "cannot be changed" in changed.json()["error"]["message"]
    wrong_guid = foundry.call("PUT", f"{WS_ID}/serverlessEndpoints/x", body(PHI_FT.replace(GUID, SUB)))
    assert wrong_guid.status_code == 400


def test_endpoint_data_plane_checks_the_key_and_stops_after_regeneration(
    foundry: Arm, control: SimulatorControl
) -> None:
    from azure.ai.inference import ChatCompletionsClient
    from azure.core.credentials import AzureKeyCredential

    uri = ready(foundry, "phi", PHI_FT)["properties"]["inferenceEndpoint"]["uri"]
    keys = foundry.call("POST", f"{WS_ID}/serverlessEndpoints/phi/listKeys").json()
    client = ChatCompletionsClient(endpoint=uri, credential=AzureKeyCredential(keys["primaryKey"]))
    reply = client.complete(messages=[{"role": "user", "content": "hello there"}])
    assert reply.choices[0].message.content == "echo: hello there"
    streamed = openai.OpenAI(base_url=uri, api_key=keys["secondaryKey"]).chat.completions.create(
        model="any", messages=CHAT["messages"], stream=True
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices) == "echo: hello there"
    assert requests.post(f"{uri}/chat/completions", json=CHAT, timeout=5).status_code == 401
    regenerated = foundry.call("POST", f"{WS_ID}/serverlessEndpoints/phi/regenerateKeys", {"keyType": "Primary"})
    assert regenerated.json()["primaryKey"] != keys["primaryKey"]
    old = requests.post(
        f"{uri}/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {keys['primaryKey']}"}, timeout=5
    )
    assert old.status_code == 401
    control.change_serverless_endpoint(WS, "phi", suspended=True)
    assert foundry.call("GET", f"{WS_ID}/serverlessEndpoints/phi").json()["properties"]["endpointState"] == "Suspended"
    assert (
        requests.post(
            f"{uri}/chat/completions", json=CHAT, headers={"api-key": keys["secondaryKey"]}, timeout=5
        ).status_code
        == 404
    )
    assert keys["primaryKey"] not in str(control.foundry_state())
