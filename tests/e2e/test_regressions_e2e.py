"""Defects a review found, each pinned over real HTTP (host + simulator + Azurite as processes).

- a model swap must not reset the content filter, upgrade option or tags (ARM's PUT replaces the resource);
- an error after an ARM call carries ARM's x-ms-correlation-request-id;
- a deployment deleted while a PUT/PATCH waits is 404, never 500;
- the audit trail names a create as a create whatever the answer's status, and marks repeats;
- /api/audit?account= is checked like every other ?account=;
- relayed inference answers keep the service's x-request-id; Azure's own comes back as x-ms-request-id;
- a chat request without api-version is refused as Azure refuses it;
- a malformed BLOCKING_THREADS is a ConfigurationError naming it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import requests

from localdev.simulator.control_client import SimulatorControl
from localdev.wiring import DEMO_ACCOUNTS
from tests.e2e.conftest import Api, Stack

MAIN = DEMO_ACCOUNTS[0]
MODEL, OTHER_MODEL = MAIN.models[0], MAIN.models[1]
CHAT = {"messages": [{"role": "user", "content": "hi"}]}
VERSION = {"api-version": "2024-10-21"}


def unique(prefix: str) -> str:
    return f"{prefix}-{int(time.time() * 1000) % 10**9}"


def arm_writes(sim: SimulatorControl, method: str) -> list[dict[str, Any]]:
    return [r for r in sim.requests("arm") if r["method"] == method]


def audit(api: Api, name: str) -> list[dict[str, Any]]:
    response = api.call("GET", "/audit", params={"deployment": name})
    assert response.status_code == 200, response.text
    return list(response.json()["value"])


def test_model_swap_keeps_content_filter_upgrade_option_and_tags(api: Api, sim: SimulatorControl) -> None:
    name = unique("swap")
    created = api.put(
        name,
        {
            "model": MODEL,
            "raiPolicyName": "Strict-Filter",
            "versionUpgradeOption": "NoAutoUpgrade",
            "tags": {"team": "search"},
        },
        wait="15",
    )
    assert created.status_code == 201, created.text
    sim.clear_requests()
    swapped = api.put(name, {"model": OTHER_MODEL}, wait="15")
    assert swapped.status_code == 200, swapped.text
    [put] = arm_writes(sim, "PUT")
    assert put["body"]["properties"]["raiPolicyName"] == "Strict-Filter"
    assert put["body"]["properties"]["versionUpgradeOption"] == "NoAutoUpgrade"
    assert put["body"]["tags"] == {"team": "search"}
    after = swapped.json()
    assert (after["model"]["name"], after["raiPolicyName"], after["tags"]) == (
        OTHER_MODEL,
        "Strict-Filter",
        {"team": "search"},
    )


def test_a_refused_change_carries_arms_correlation_id(api: Api, sim: SimulatorControl) -> None:
    sim.patch_config({"accounts": [{**MAIN.simulator_entry(), "quota": 5}, DEMO_ACCOUNTS[1].simulator_entry()]})
    response = api.put(unique("quota"), {"model": MODEL, "sku": {"name": "Standard", "capacity": 50}})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InsufficientQuota"
    assert len(arm_writes(sim, "PUT")) == 1  # ARM was called, and refused
    assert len(response.headers["x-ms-correlation-request-id"]) == 36


def test_patch_whose_operation_ends_not_found_is_404(api: Api, sim: SimulatorControl) -> None:
    """ARM's operation result is 404 DeploymentNotFound when another request deleted the deployment."""
    name = unique("gone")
    assert api.put(name, {"model": MODEL}, wait="15").status_code == 201
    sim.patch_config({"provisioningDelaySeconds": 1.0})
    sim.add_fault(scope="arm", method="GET", pathContains="operationStatuses", status=404, code="DeploymentNotFound")
    response = api.patch(name, {"capacity": 3}, wait="20")
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "DeploymentNotFound"
    assert "deleted by another request" in response.json()["error"]["message"]


def test_put_whose_deployment_is_deleted_while_it_waits_is_404(api: Api, sim: SimulatorControl) -> None:
    """The operation succeeds, then the final read finds no deployment: 404, not a 5xx or a stale 201."""
    name = unique("vanish")
    sim.patch_config({"provisioningDelaySeconds": 2.0})
    answer: dict[str, requests.Response] = {}
    waiting = threading.Thread(target=lambda: answer.setdefault("put", api.put(name, {"model": MODEL}, wait="30")))
    waiting.start()
    deadline = time.monotonic() + 10
    while not arm_writes(sim, "PUT") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert arm_writes(sim, "PUT"), "the PUT never reached ARM"
    # From now on, reads of the deployment find nothing, as after a concurrent DELETE.
    sim.add_fault(
        scope="arm", method="GET", pathContains=f"/deployments/{name}", status=404, code="DeploymentNotFound", count=-1
    )
    waiting.join(timeout=40)
    response = answer["put"]
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "DeploymentNotFound"
    assert response.headers["x-ms-correlation-request-id"]


def test_a_create_answered_202_is_audited_as_create(api: Api, sim: SimulatorControl) -> None:
    sim.patch_config({"provisioningDelaySeconds": 2.0})
    name = unique("created")
    response = api.put(name, {"model": MODEL})
    assert response.status_code == 202
    [record] = audit(api, name)
    assert record["action"] == "create" and record["changed"] is True
    assert record["outcome"]["status"] == 202


def test_repeated_deletes_are_recorded_as_repeats(api: Api, sim: SimulatorControl) -> None:
    name = unique("repeat")
    assert api.put(name, {"model": MODEL}, wait="15").status_code == 201
    sim.patch_config({"provisioningDelaySeconds": 3.0})
    first = api.delete(name)
    again = api.delete(name)
    assert (first.status_code, again.status_code) == (202, 202)
    assert len(arm_writes(sim, "DELETE")) == 1
    deletes = [r for r in audit(api, name) if r["action"] == "delete"]
    assert [r["changed"] for r in deletes] == [False, True]  # newest first: the repeat changed nothing


def test_audit_query_with_an_unknown_account_is_404(api: Api, sim: SimulatorControl) -> None:
    response = api.call("GET", "/audit", params={"account": "nowhere"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "AccountNotFound"


def test_relayed_chat_answers_keep_the_services_request_id(api: Api, sim: SimulatorControl) -> None:
    headers = {"x-ms-client-request-id": "trace-chat-7"}
    response = api.call(
        "POST", "/openai/deployments/vision/chat/completions", params=VERSION, json=CHAT, headers=headers
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "trace-chat-7"
    assert response.headers["x-ms-request-id"] not in ("", "trace-chat-7")  # Azure's own id
    [upstream] = [r for r in sim.requests("dataplane") if r["method"] == "POST"]
    assert upstream["clientRequestId"] == "trace-chat-7"


def test_chat_without_api_version_is_refused_as_azure_refuses_it(api: Api, sim: SimulatorControl) -> None:
    response = api.call("POST", "/openai/deployments/vision/chat/completions", json=CHAT)
    assert response.status_code == 404
    assert response.json()["error"]["target"] == "api-version"
    assert sim.requests("dataplane") == []


def test_malformed_blocking_threads_is_a_configuration_error(stack: Stack, sim: SimulatorControl) -> None:
    api = stack.configured(BLOCKING_THREADS="lots")
    response = api.get()
    assert response.status_code == 500
    error = response.json()["error"]
    assert (error["code"], error["target"]) == ("ConfigurationError", "BLOCKING_THREADS")
