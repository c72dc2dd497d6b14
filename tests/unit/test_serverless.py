"""Serverless endpoints in process: model ids from the workspace's GUID, marketplace subscriptions reused or made
first, the key cache, the project settings and the allow-list, over the real ArmClient and a scripted ARM."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from services.accounts import named
from services.errors import ConfigurationError, EndpointNotAllowed, ProjectNotFound, ValidationError
from services.foundry_models import (
    Workspace,
    ensure_subscription,
    marketplace_model,
    partner_model,
    resolve_model,
    subscription_name,
)
from services.projects import Project
from services.serverless_keys import EndpointKeys
from services.serverless_requests import check_endpoint_name, parse_endpoint_put
from services.settings import load_settings

from .fake_arm import Call, Reply, make_client

pytestmark = pytest.mark.unit

SUB = "0b1f6471-1bf0-4dda-aec3-cb9272f09590"
GUID = "7d1f0c5e-2b3a-4c4d-9e8f-a1b2c3d4e5f6"
LLAMA = "azureml://registries/Meta/models/Meta-Llama-3.1-8B-Instruct"
PROJECT = named(
    {"ml": Project.model_validate({"subscriptionId": SUB, "resourceGroup": "rg", "workspaceName": "proj"})}
)["ml"]
WORKSPACE = Workspace("eastus2", GUID)
ACCOUNTS = json.dumps({"main": {"subscriptionId": SUB, "resourceGroup": "rg", "accountName": "aoai"}})


def arm_answering(routes: dict[tuple[str, str], Reply]) -> tuple[Any, list[Call]]:
    def handler(call: Call) -> Reply:
        for (method, suffix), reply in routes.items():
            if call.method == method and call.path.endswith(suffix):
                return reply
        return 404, {}, {"error": {"code": "ResourceNotFound", "message": "not found"}}

    client, transport, _ = make_client(handler)
    return client, transport.calls


def test_a_name_alone_is_the_latest_version_with_the_workspace_guid() -> None:
    arm, calls = arm_answering({("GET", "/models/phi-ft"): (200, {}, {"properties": {"latestVersion": "3"}})})
    model_id = resolve_model(arm, PROJECT, WORKSPACE, "phi-ft", "2024-10-01", "r1")
    assert model_id == f"azureml://locations/eastus2/workspaces/{GUID}/models/phi-ft/versions/3"
    assert calls[0].query["api-version"] == ["2024-10-01"]
    assert calls[0].path.endswith("/providers/Microsoft.MachineLearningServices/workspaces/proj/models/phi-ft")


def test_a_named_version_must_be_registered_and_a_full_id_is_taken_as_given() -> None:
    arm, _ = arm_answering({("GET", "/models/phi-ft/versions/2"): (200, {}, {"properties": {}})})
    assert resolve_model(arm, PROJECT, WORKSPACE, "phi-ft/2", "v", None).endswith("/models/phi-ft/versions/2")
    with pytest.raises(ValidationError) as unknown:
        resolve_model(arm, PROJECT, WORKSPACE, "phi-ft/9", "v", None)
    assert unknown.value.code == "UnknownModel" and "Version 9" in unknown.value.message
    full = f"{LLAMA}/versions/3"
    assert resolve_model(arm, PROJECT, WORKSPACE, full, "v", None) == full


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"model": "a/b/c"}, "InvalidField"),
        ({"model": "azureml://somewhere/else"}, "InvalidField"),
        ({"model": "phi", "contentSafety": "Maybe"}, "InvalidField"),
        ({"model": "phi", "marketplaceModel": "azureml://registries/azureml/models/Phi-4"}, "InvalidField"),
        ({"model": "phi", "capacity": 1}, "UnknownField"),
        ({"model": "phi", "keepAlive": True}, "UnknownField"),  # no usage figures for endpoints: not a field
        ({"model": "phi", "ttlHours": 1, "expiresAt": "2030-01-01T00:00:00Z"}, "InvalidExpiry"),
        ({}, "MissingField"),
    ],
)
def test_bad_bodies_are_refused_before_arm(body: dict[str, Any], code: str) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_endpoint_put(json.dumps(body).encode())
    assert refused.value.code == code


def test_endpoint_names_follow_arms_rule() -> None:
    check_endpoint_name("phi-support")
    for bad in ("1phi", "phi_support", "x" * 53, "phi.ft"):
        with pytest.raises(ValidationError):
            check_endpoint_name(bad)


def test_partner_models_need_a_subscription_and_microsofts_do_not() -> None:
    assert partner_model(f"{LLAMA}/versions/3") == LLAMA
    assert partner_model("azureml://registries/azureml/models/Phi-4-mini-instruct/versions/1") is None
    assert partner_model(f"azureml://locations/eastus2/workspaces/{GUID}/models/ft/versions/1") is None
    assert marketplace_model(f"{LLAMA}/versions/2") == LLAMA
    assert subscription_name(LLAMA) == "Meta-Llama-3-1-8B-Instruct"
    assert subscription_name("azureml://registries/X/models/3b-model") == "m-3b-model"


def test_an_existing_subscription_to_the_model_is_reused_whoever_made_it() -> None:
    theirs = {"id": "/x/marketplaceSubscriptions/made-by-hand", "properties": {"modelId": LLAMA.lower()}}
    arm, calls = arm_answering({("GET", "/marketplaceSubscriptions"): (200, {}, {"value": [theirs]})})
    found, created = ensure_subscription(arm, PROJECT, LLAMA, "v", None, deadline=arm.clock() + 5)
    assert (found, created) == (theirs, False)
    assert [c.method for c in calls] == ["GET"]


def test_a_missing_subscription_is_created_under_the_models_name() -> None:
    made = {
        "id": "/x/marketplaceSubscriptions/Meta-Llama-3-1-8B-Instruct",
        "properties": {"provisioningState": "Succeeded"},
    }
    arm, calls = arm_answering(
        {
            ("GET", "/marketplaceSubscriptions"): (200, {}, {"value": []}),
            ("PUT", "/marketplaceSubscriptions/Meta-Llama-3-1-8B-Instruct"): (201, {}, made),
            ("GET", "/marketplaceSubscriptions/Meta-Llama-3-1-8B-Instruct"): (200, {}, made),
        }
    )
    found, created = ensure_subscription(arm, PROJECT, LLAMA, "v", None, deadline=arm.clock() + 5)
    assert created and found == made
    put = next(c for c in calls if c.method == "PUT")
    assert put.body == {"properties": {"modelId": LLAMA}}


def test_keys_are_fetched_once_shared_and_fetched_again_only_when_refused() -> None:
    fetched: list[str] = []

    async def fetch(project: str, endpoint: str, request_id: str | None) -> str:
        await asyncio.sleep(0)
        fetched.append(endpoint)
        return f"key-{len(fetched)}"  # pragma: allowlist secret

    async def scenario() -> None:
        keys = EndpointKeys(fetch)
        first = await asyncio.gather(*(keys.get("ml", "phi", None) for _ in range(5)))
        assert set(first) == {"key-1"} and keys.fetches == 1
        assert await keys.refresh("ml", "phi", "key-1", None) == "key-2"
        assert await keys.refresh("ml", "phi", "key-1", None) == "key-2"  # another request already refetched
        assert keys.fetches == 2 and "key" not in repr(keys).replace("EndpointKeys", "")
        keys.forget("ml")
        assert await keys.get("ml", "phi", None) == "key-3"

    asyncio.run(scenario())


def test_project_settings_are_validated_like_accounts() -> None:
    one = {"subscriptionId": SUB, "resourceGroup": "rg", "workspaceName": "proj"}
    settings = load_settings({"AZURE_OPENAI_ACCOUNTS": ACCOUNTS, "FOUNDRY_PROJECTS": json.dumps({"ml": one})})
    assert settings.project(None).alias == "ml" and settings.project(None).may_call("anything")
    with pytest.raises(ProjectNotFound):
        settings.project("other")
    two = json.dumps({"ml": one, "ml2": {**one, "inferenceEndpoints": ["only-this"]}})
    with pytest.raises(ConfigurationError) as several:
        load_settings({"AZURE_OPENAI_ACCOUNTS": ACCOUNTS, "FOUNDRY_PROJECTS": two})
    assert "DEFAULT_PROJECT" in several.value.message
    with pytest.raises(ConfigurationError) as bad:
        load_settings({"AZURE_OPENAI_ACCOUNTS": ACCOUNTS, "FOUNDRY_PROJECTS": "{not json"})
    assert "FOUNDRY_PROJECTS" in bad.value.message
    with pytest.raises(ConfigurationError):
        load_settings({"AZURE_OPENAI_ACCOUNTS": ACCOUNTS, "DEFAULT_PROJECT": "ml"})
    none = load_settings({"AZURE_OPENAI_ACCOUNTS": ACCOUNTS})
    with pytest.raises(ProjectNotFound):
        none.project(None)


def test_endpoints_outside_the_allow_list_are_refused_before_anything_is_called() -> None:
    from services.serverless_inference import ServerlessGateway

    one = {"subscriptionId": SUB, "resourceGroup": "rg", "workspaceName": "proj", "inferenceEndpoints": ["phi"]}
    settings = load_settings({"AZURE_OPENAI_ACCOUNTS": ACCOUNTS, "FOUNDRY_PROJECTS": json.dumps({"ml": one})})

    async def never(*_: Any) -> Any:
        raise AssertionError("nothing may be called")

    gateway = ServerlessGateway(settings, None, None, never)  # type: ignore[arg-type]
    with pytest.raises(EndpointNotAllowed) as refused:
        asyncio.run(gateway.chat_completions("ml", "llama", None, b"{}", request_id="r"))
    assert "inferenceEndpoints" in refused.value.message and refused.value.status == 403
