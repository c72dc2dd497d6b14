"""Foundry serverless endpoints over real HTTP: the host as a process, the simulator's Microsoft.MachineLearningServices
surface and endpoint data plane, the real openai and azure-ai-inference SDKs, Azurite as the audit table."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
import requests
from azure.ai.inference import ChatCompletionsClient
from azure.core.credentials import AzureKeyCredential
from azure.data.tables import TableServiceClient

from localdev.simulator.control_client import SimulatorControl
from localdev.wiring import DEMO_PROJECTS, LLAMA_CATALOG_MODEL
from tests.e2e.conftest import Api, Stack
from tests.e2e.test_auth_audit_e2e import IMPLIED, ROLES, principal, send

PROJECT = DEMO_PROJECTS[0]
PHI_FT, LLAMA_FT = (model["name"] for model in PROJECT.models)
WS_PATH = f"/providers/Microsoft.MachineLearningServices/workspaces/{PROJECT.workspace_name}"
HELLO = [{"role": "user", "content": "hello serverless"}]


def put(api: Api, name: str, body: dict[str, Any], **params: str) -> requests.Response:
    return api.call("PUT", f"/serverless-endpoints/{name}", json=body, params=params)


def arm_writes(sim: SimulatorControl, fragment: str) -> list[dict[str, Any]]:
    return [r for r in sim.requests("arm") if r["method"] in ("PUT", "DELETE", "POST") and fragment in r["path"]]


def list_keys_calls(sim: SimulatorControl) -> int:
    return len([r for r in sim.requests("arm") if r["path"].endswith("/listKeys")])


def chat_client(api: Api, name: str, **options: Any) -> openai.OpenAI:
    base_url = f"{api.base_url}/api/serverless-endpoints/{name}"
    return openai.OpenAI(base_url=base_url, api_key="anything", **options)  # pragma: allowlist secret


def ready(api: Api, name: str, body: dict[str, Any]) -> dict[str, Any]:
    response = put(api, name, body, wait="20")
    assert response.status_code == 201, response.text
    view: dict[str, Any] = response.json()
    assert view["endpointState"] == "Online"
    return view


def simulator_keys(stack: Stack, name: str) -> list[str]:
    """The endpoint's keys, read from the simulator the way only the service's identity may."""
    token = requests.get(
        f"{stack.url}/msi/token",
        params={"api-version": "2019-08-01", "resource": "https://management.azure.com"},
        headers={"X-IDENTITY-HEADER": stack.identity_header},
        timeout=10,
    ).json()["access_token"]
    workspace = f"{stack.url}/subscriptions/{PROJECT.subscription_id}/resourceGroups/{PROJECT.resource_group}{WS_PATH}"
    keys = requests.post(
        f"{workspace}/serverlessEndpoints/{name}/listKeys",
        params={"api-version": "2024-10-01"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ).json()
    return [keys["primaryKey"], keys["secondaryKey"]]


def test_a_fine_tuned_model_goes_live_by_name_answers_chat_and_is_deleted(
    stack: Stack, api: Api, sim: SimulatorControl
) -> None:
    seen: list[str] = []
    created = put(api, "phi-support", {"model": PHI_FT}, wait="20")
    seen.append(created.text)
    assert created.status_code == 201, created.text
    endpoint = created.json()
    full_id = f"azureml://locations/{PROJECT.location}/workspaces/{PROJECT.workspace_id}/models/{PHI_FT}/versions/2"
    assert endpoint["model"] == full_id and endpoint["project"] == "foundry"  # the latest version, by the GUID
    assert endpoint["endpointState"] == "Online" and endpoint["contentSafety"] == "Enabled"
    [arm_put] = arm_writes(sim, "/serverlessEndpoints/phi-support")
    assert arm_put["body"]["properties"]["modelSettings"]["modelId"] == full_id
    assert arm_put["body"]["properties"]["authMode"] == "Key" and arm_put["body"]["sku"] == {"name": "Consumption"}

    again = put(api, "phi-support", {"model": PHI_FT})
    assert again.status_code == 200 and len(arm_writes(sim, "/serverlessEndpoints/phi-support")) == 1
    listed = api.call("GET", "/serverless-endpoints", params={"project": "foundry"})
    assert [item["name"] for item in listed.json()["value"]] == ["phi-support"]
    seen += [listed.text, api.call("GET", "/serverless-endpoints/phi-support").text]

    client = chat_client(api, "phi-support")
    reply = client.chat.completions.create(model="phi", messages=HELLO)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "echo: hello serverless"
    stream = client.chat.completions.create(model="phi", messages=HELLO, stream=True)  # type: ignore[arg-type]
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "echo: hello serverless"
    inference = ChatCompletionsClient(
        endpoint=f"{api.base_url}/api/serverless-endpoints/phi-support", credential=AzureKeyCredential("anything")
    )
    assert inference.complete(messages=HELLO).choices[0].message.content == "echo: hello serverless"
    streamed = inference.complete(messages=HELLO, stream=True)
    assert "".join(u.choices[0].delta.content or "" for u in streamed if u.choices) == "echo: hello serverless"

    keys = simulator_keys(stack, "phi-support")
    audit = api.call("GET", "/audit", params={"deployment": "phi-support"})
    assert audit.json()["value"][0]["project"] == "foundry"
    seen.append(audit.text)
    deleting = api.call("DELETE", "/serverless-endpoints/phi-support")
    assert deleting.status_code == 202 and deleting.headers["Location"].startswith("/api/serverless-endpoints/")
    gone = api.call("DELETE", "/serverless-endpoints/phi-support", params={"wait": "20"})
    assert gone.status_code == 204
    assert api.follow(deleting.headers["Location"]).status_code == 404

    # A key never appears in any answer, log line or audit record.
    logs = "".join(path.read_text(errors="replace") for path in stack.folder.glob("host-*.log"))
    table = TableServiceClient.from_connection_string(stack.azurite.connection_string).get_table_client("audit")
    records = json.dumps([dict(entity) for entity in table.list_entities()], default=str)
    for key in keys:
        assert key not in logs and key not in records and not any(key in text for text in seen)


def test_a_partner_catalog_model_and_a_model_fine_tuned_from_it_share_one_marketplace_subscription(
    api: Api, sim: SimulatorControl
) -> None:
    catalog = ready(api, "llama", {"model": f"{LLAMA_CATALOG_MODEL}/versions/3"})
    writes = [r["path"].rsplit("/", 2)[-2] for r in arm_writes(sim, WS_PATH)]
    assert writes == ["marketplaceSubscriptions", "serverlessEndpoints"]  # the subscription first
    tuned = ready(api, "llama-support", {"model": LLAMA_FT, "marketplaceModel": LLAMA_CATALOG_MODEL})
    assert len(arm_writes(sim, "/marketplaceSubscriptions/")) == 1
    assert tuned["marketplaceSubscription"] == catalog["marketplaceSubscription"]
    assert catalog["marketplaceSubscription"]["status"] == "Subscribed"


def test_regenerated_keys_cost_exactly_one_more_list_keys(api: Api, sim: SimulatorControl) -> None:
    ready(api, "phi-keys", {"model": f"{PHI_FT}/1"})
    client = chat_client(api, "phi-keys")
    assert client.chat.completions.create(model="x", messages=HELLO).choices  # type: ignore[arg-type]
    before = list_keys_calls(sim)
    sim.change_serverless_endpoint(PROJECT.workspace_name, "phi-keys", regenerate="Primary")
    assert client.chat.completions.create(model="x", messages=HELLO).choices  # type: ignore[arg-type]
    assert list_keys_calls(sim) == before + 1
    assert client.chat.completions.create(model="x", messages=HELLO).choices  # type: ignore[arg-type]
    assert list_keys_calls(sim) == before + 1


def test_an_endpoint_that_is_not_online_answers_409(api: Api, sim: SimulatorControl) -> None:
    sim.hold_operations()
    try:
        assert put(api, "phi-slow", {"model": PHI_FT}).status_code == 202
        with pytest.raises(openai.ConflictError) as refused:
            chat_client(api, "phi-slow", max_retries=0).chat.completions.create(model="x", messages=HELLO)  # type: ignore[arg-type]
        assert refused.value.response.json()["error"]["code"] == "EndpointNotReady"
        assert "Creating" in refused.value.response.json()["error"]["message"]
    finally:
        sim.release_operations()


def test_arm_refusals_pass_through_and_a_model_change_is_refused_before_arm(api: Api, sim: SimulatorControl) -> None:
    ready(api, "phi-one", {"model": PHI_FT})
    second = put(api, "phi-two", {"model": PHI_FT}, wait="20")
    assert second.status_code == 400 and second.json()["error"]["code"] == "UserError"
    assert "one serverless endpoint per custom model" in second.json()["error"]["message"]
    writes = len(arm_writes(sim, "/serverlessEndpoints/"))
    changed = put(api, "phi-one", {"model": f"{PHI_FT}/1"})
    assert changed.status_code == 400 and changed.json()["error"]["code"] == "ModelChangeNotSupported"
    assert "DELETE" in changed.json()["error"]["message"] and len(arm_writes(sim, "/serverlessEndpoints/")) == writes
    unknown = put(api, "nope", {"model": "not-registered"})
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "UnknownModel"
    missing = api.call("GET", "/serverless-endpoints/phi-one", params={"project": "elsewhere"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ProjectNotFound"


ROUTES: list[tuple[str, str, str, dict[str, str], Any, str]] = [
    ("list", "GET", "/serverless-endpoints", {}, None, "Deployments.Read"),
    ("get", "GET", "/serverless-endpoints/absent", {}, None, "Deployments.Read"),
    ("put", "PUT", "/serverless-endpoints/matrix", {}, {"model": PHI_FT}, "Deployments.Write"),
    ("delete", "DELETE", "/serverless-endpoints/matrix-gone", {}, None, "Deployments.Write"),
    ("chat", "POST", "/serverless-endpoints/absent/chat/completions", {}, {"messages": HELLO}, "Inference.Invoke"),
]


@pytest.mark.parametrize("route", ROUTES, ids=[r[0] for r in ROUTES])
def test_role_matrix(
    stack: Stack, sim: SimulatorControl, route: tuple[str, str, str, dict[str, str], Any, str]
) -> None:
    easy = stack.configured(AUTH_MODE="entra", WEBSITE_AUTH_ENABLED="True")
    assert send(easy, route, None).status_code == 401
    for role in ROLES:
        response = send(easy, route, principal(role))
        if role == route[5] or route[5] in IMPLIED.get(role, set()):
            assert response.status_code not in (401, 403), (role, response.text)
        else:
            assert response.status_code == 403 and response.json()["error"]["code"] == "Forbidden", role
