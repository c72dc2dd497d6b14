"""Who may do what, and the audit trail, over real HTTP (Azurite as the real Table Storage)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
import requests

from localdev.azurite import start_azurite
from localdev.simulator.control_client import SimulatorControl
from localdev.wiring import DEMO_ACCOUNTS
from services.auth import encode_principal
from tests.e2e.conftest import Api, Stack

MAIN = DEMO_ACCOUNTS[0]
MODEL = MAIN.models[0]
JOB = MAIN.fine_tuning_jobs[0]["id"]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 64
ROLES = ["Deployments.Read", "Deployments.Write", "Inference.Invoke", "Audit.Read"]
CHAT = {"messages": [{"role": "user", "content": "hi"}]}

# (name, method, path, query, json body or raw bytes, role it needs)
ROUTES: list[tuple[str, str, str, dict[str, str], Any, str]] = [
    ("list", "GET", "/deployments", {}, None, "Deployments.Read"),
    ("get", "GET", "/deployments/vision", {}, None, "Deployments.Read"),
    ("job", "GET", f"/fine_tuning/jobs/{JOB}", {}, None, "Deployments.Read"),
    ("idle", "GET", "/deployments/idle", {}, None, "Deployments.Read"),
    ("intent", "GET", f"/fine_tuning/jobs/{JOB}/deploy", {}, None, "Deployments.Read"),
    ("put", "PUT", "/deployments/matrix", {}, {"model": MODEL}, "Deployments.Write"),
    ("patch", "PATCH", "/deployments/vision", {}, {"capacity": 11}, "Deployments.Write"),
    ("delete", "DELETE", "/deployments/matrix-gone", {}, None, "Deployments.Write"),
    ("deploy", "POST", f"/fine_tuning/jobs/{JOB}/deploy", {}, {"deployment": "matrix-job"}, "Deployments.Write"),
    (
        "chat",
        "POST",
        "/openai/deployments/vision/chat/completions",
        {"api-version": "2024-10-21"},
        CHAT,
        "Inference.Invoke",
    ),
    ("image", "POST", "/process_image", {"instructions": "describe"}, PNG, "Inference.Invoke"),
    ("audit", "GET", "/audit", {}, None, "Audit.Read"),
    ("overview", "GET", "/overview", {}, None, "Deployments.Read"),
    ("usage", "GET", "/usage", {}, None, "Audit.Read"),
]
IMPLIED = {"Deployments.Write": {"Deployments.Read"}}


def send(api: Api, route: tuple[str, str, str, dict[str, str], Any, str], principal: str | None) -> requests.Response:
    _, method, path, query, body, _ = route
    headers = {"X-MS-CLIENT-PRINCIPAL": principal} if principal else {}
    if isinstance(body, bytes):
        return api.call(method, path, params=query, data=body, headers=headers)
    return api.call(method, path, params=query, json=body, headers=headers)


def principal(*roles: str, object_id: str = "5b0c2c43-0000-4000-8000-00000000c0de") -> str:
    return encode_principal(
        object_id=object_id, roles=list(roles), app_id="11112222-3333-4444-5555-666677778888", name="pipeline-deployer"
    )


@pytest.fixture(scope="module")
def entra_api(stack: Stack) -> Api:
    """A host as in Azure with Easy Auth on: the test plays the platform and presents the principal."""
    return stack.configured(AUTH_MODE="entra", WEBSITE_AUTH_ENABLED="True")


@pytest.fixture
def easy(entra_api: Api, sim: SimulatorControl) -> Api:
    return entra_api


@pytest.mark.parametrize("route", ROUTES, ids=[r[0] for r in ROUTES])
def test_role_matrix(easy: Api, route: tuple[str, str, str, dict[str, str], Any, str]) -> None:
    needed = route[5]
    unauthenticated = send(easy, route, None)
    assert unauthenticated.status_code == 401, unauthenticated.text
    assert unauthenticated.json()["error"]["code"] == "Unauthorized"
    for role in ROLES:
        response = send(easy, route, principal(role))
        allowed = role == needed or needed in IMPLIED.get(role, set())
        if allowed:
            assert response.status_code not in (401, 403), (role, response.text)
        else:
            assert response.status_code == 403, (role, response.text)
            error = response.json()["error"]
            assert error["code"] == "Forbidden" and needed in error["message"]
    garbage = send(easy, route, base64.b64encode(b"not json").decode())
    assert garbage.status_code == 401


def test_spoofed_principal_with_platform_auth_off_fails_closed(stack: Stack, sim: SimulatorControl) -> None:
    api = stack.configured(AUTH_MODE="entra")  # WEBSITE_AUTH_ENABLED not set: the header cannot be trusted
    for route in ROUTES:
        response = send(api, route, principal(*ROLES))
        assert response.status_code == 503, (route[0], response.text)
        assert response.json()["error"]["code"] == "AuthenticationNotConfigured"
    assert sim.requests() == []


def test_auth_mode_none_is_refused_in_azure(stack: Stack, sim: SimulatorControl) -> None:
    api = stack.configured(AUTH_MODE="none", WEBSITE_INSTANCE_ID="abc123")
    response = api.get()
    assert response.status_code == 500
    assert "AUTH_MODE=none" in response.json()["error"]["message"]


def test_unknown_auth_mode_fails_closed(stack: Stack, sim: SimulatorControl) -> None:
    api = stack.configured(AUTH_MODE="open-sesame")
    response = api.call("GET", "/deployments", headers={"X-MS-CLIENT-PRINCIPAL": principal(*ROLES)})
    assert response.status_code == 500 and response.json()["error"]["target"] == "AUTH_MODE"


# Audit trail


def audit_records(api: Api, **query: str) -> list[dict[str, Any]]:
    response = api.call("GET", "/audit", params=query, headers={"X-MS-CLIENT-PRINCIPAL": principal("Audit.Read")})
    assert response.status_code == 200, response.text
    return list(response.json()["value"])


def test_every_mutation_is_recorded_with_caller_and_outcome(easy: Api, sim: SimulatorControl) -> None:
    writer = {"X-MS-CLIENT-PRINCIPAL": principal("Deployments.Write"), "x-ms-client-request-id": "audit-trace-1"}
    name = f"audited-{int(time.time() * 1000)}"
    created = easy.call("PUT", f"/deployments/{name}", params={"wait": "15"}, json={"model": MODEL}, headers=writer)
    assert created.status_code == 201
    scaled = easy.call("PATCH", f"/deployments/{name}", params={"wait": "15"}, json={"capacity": 3}, headers=writer)
    assert scaled.status_code == 200
    deleted = easy.call("DELETE", f"/deployments/{name}", params={"wait": "15"}, headers=writer)
    assert deleted.status_code == 204
    records = audit_records(easy, deployment=name)
    assert [r["action"] for r in records] == ["delete", "scale", "create"]  # newest first
    create = records[-1]
    assert create["caller"] == {
        "objectId": "5b0c2c43-0000-4000-8000-00000000c0de",
        "appId": "11112222-3333-4444-5555-666677778888",
        "name": "pipeline-deployer",
    }
    assert create["account"] == "main" and create["deployment"] == name
    assert create["request"]["model"] == MODEL
    assert create["outcome"] == {"status": 201, "provisioningState": "Succeeded", "code": None}
    assert create["requestId"] == "audit-trace-1"
    assert create["armCorrelationId"]
    assert records[1]["request"] == {"capacity": 3}
    assert records[0]["outcome"]["status"] == 204


def test_refused_change_is_recorded_with_its_error(easy: Api, sim: SimulatorControl) -> None:
    sim.patch_config({"accounts": [{**MAIN.simulator_entry(), "quota": 5}, DEMO_ACCOUNTS[1].simulator_entry()]})
    name = f"over-{int(time.time() * 1000)}"
    response = easy.call(
        "PUT",
        f"/deployments/{name}",
        json={"model": MODEL, "sku": {"name": "Standard", "capacity": 50}},
        headers={"X-MS-CLIENT-PRINCIPAL": principal("Deployments.Write")},
    )
    assert response.status_code == 400
    [record] = audit_records(easy, deployment=name)
    assert record["outcome"] == {"status": 400, "provisioningState": None, "code": "InsufficientQuota"}


def test_deploy_from_job_is_recorded(easy: Api, sim: SimulatorControl) -> None:
    name = f"job-{int(time.time() * 1000)}"
    response = easy.call(
        "POST",
        f"/fine_tuning/jobs/{JOB}/deploy",
        params={"wait": "15"},
        json={"deployment": name},
        headers={"X-MS-CLIENT-PRINCIPAL": principal("Deployments.Write")},
    )
    assert response.status_code == 201, response.text
    [record] = audit_records(easy, deployment=name)
    assert record["action"] == "deploy_from_job"
    assert record["request"]["job"] == JOB


def test_audit_query_pages_newest_first(easy: Api, sim: SimulatorControl) -> None:
    writer = {"X-MS-CLIENT-PRINCIPAL": principal("Deployments.Write")}
    name = f"paged-{int(time.time() * 1000)}"
    for capacity in (2, 3, 4, 5, 6):
        easy.call(
            "PUT",
            f"/deployments/{name}",
            params={"wait": "15"},
            headers=writer,
            json={"model": MODEL, "sku": {"name": "Standard", "capacity": capacity}} if capacity == 2 else None,
        )
        if capacity > 2:
            easy.call(
                "PATCH", f"/deployments/{name}", params={"wait": "15"}, json={"capacity": capacity}, headers=writer
            )
    reader = {"X-MS-CLIENT-PRINCIPAL": principal("Audit.Read")}
    seen: list[dict[str, Any]] = []
    url = f"{easy.base_url}/api/audit?deployment={name}&top=2"
    pages = 0
    while url and pages < 10:
        page = requests.get(url, headers=reader, timeout=30).json()
        seen.extend(page["value"])
        url = f"{easy.base_url}{page['nextLink']}" if page.get("nextLink") else ""
        pages += 1
    assert pages == 3
    assert [r["request"].get("capacity", r["request"].get("sku", {}).get("capacity")) for r in seen] == [6, 5, 4, 3, 2]
    times = [r["time"] for r in seen]
    assert times == sorted(times, reverse=True)


def test_audit_query_bad_parameters(easy: Api, sim: SimulatorControl) -> None:
    reader = {"X-MS-CLIENT-PRINCIPAL": principal("Audit.Read")}
    for query in ({"top": "0"}, {"since": "yesterday"}, {"continuationToken": "%%%"}):
        response = easy.call("GET", "/audit", params=query, headers=reader)
        assert response.status_code == 400, (query, response.text)


def test_mutation_refused_when_the_audit_store_is_down(stack: Stack, sim: SimulatorControl, tmp_path: Any) -> None:
    (tmp_path / "data").mkdir()
    azurite = start_azurite(tmp_path / "data", tmp_path / "azurite.log")
    api = stack.configured(AzureWebJobsStorage=azurite.connection_string)
    assert api.put("before-outage", {"model": MODEL}, wait="15").status_code == 201
    azurite.stop()
    sim.clear_requests()
    refused = api.put("during-outage", {"model": MODEL})
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "AuditUnavailable"
    assert sim.requests("arm") == []  # nothing was sent to ARM
    assert api.get().status_code == 200  # reads go on
    chat = api.call(
        "POST", "/openai/deployments/vision/chat/completions", params={"api-version": "2024-10-21"}, json=CHAT
    )
    assert chat.status_code == 200  # and so does inference


def test_host_starts_with_unreachable_audit_store(stack: Stack, sim: SimulatorControl) -> None:
    dead = "DefaultEndpointsProtocol=http;AccountName=x;AccountKey=eA==;TableEndpoint=http://127.0.0.1:9/x;"
    api = stack.configured(AzureWebJobsStorage=dead)
    assert api.get().status_code == 200
    assert api.put("nope", {"model": MODEL}).json()["error"]["code"] == "AuditUnavailable"


def test_local_development_without_storage_logs_the_trail(stack: Stack, sim: SimulatorControl) -> None:
    api = stack.start_host(AzureWebJobsStorage="")
    assert api.put("logged", {"model": MODEL}, wait="15").status_code == 201
    log = (stack.folder / f"host-{len(stack.hosts) - 1}.log").read_text()
    assert "No AzureWebJobsStorage setting" in log
    records = [json.loads(line.split("audit ", 1)[1]) for line in log.splitlines() if " audit {" in line]
    assert any(r["deployment"] == "logged" and r["outcome"] and r["outcome"]["status"] == 201 for r in records)
