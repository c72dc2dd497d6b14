"""The deployment API over real HTTP: local host + simulator processes, real azure-identity and requests."""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import pytest

from localdev.simulator.control_client import SimulatorControl
from localdev.wiring import DEMO_ACCOUNTS
from tests.e2e.conftest import Api, Stack

MAIN, EAST = DEMO_ACCOUNTS
MODEL = MAIN.models[0]
OTHER_MODEL = MAIN.models[1]
EAST_MODEL = EAST.models[0]


def arm_requests(sim: SimulatorControl, method: str | None = None) -> list[dict[str, Any]]:
    return [r for r in sim.requests("arm") if method is None or r["method"] == method]


def mutations(sim: SimulatorControl) -> list[dict[str, Any]]:
    return [r for r in sim.requests("arm") if r["method"] in ("PUT", "PATCH", "DELETE")]


def poll_until_terminal(api: Api, location: str, timeout: float = 15) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = api.follow(location)
        assert response.status_code == 200, response.text
        body = response.json()
        if body["provisioningState"] in ("Succeeded", "Failed", "Canceled"):
            return body
        time.sleep(0.2)
    raise AssertionError(f"{location} did not reach a terminal state")


def deploy(api: Api, name: str, body: dict[str, Any] | None = None, wait: str = "15") -> dict[str, Any]:
    response = api.put(name, body or {"model": MODEL}, wait=wait)
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_deploy_answers_202_then_polls_to_succeeded(api: Api, sim: SimulatorControl) -> None:
    response = api.put("support-bot", {"model": MODEL, "sku": {"name": "Standard", "capacity": 2}})
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == "/api/deployments/support-bot?account=main"
    assert int(response.headers["Retry-After"]) >= 1
    body = response.json()
    assert body["provisioningState"] in ("Accepted", "Creating")
    assert body["model"] == {"format": "OpenAI", "name": MODEL, "version": "1"}
    assert body["sku"] == {"name": "Standard", "capacity": 2}
    final = poll_until_terminal(api, response.headers["Location"])
    assert final["provisioningState"] == "Succeeded"
    assert final["id"].endswith("/accounts/aoai-swedencentral/deployments/support-bot")
    [put] = arm_requests(sim, "PUT")
    assert put["body"] == {
        "sku": {"name": "Standard", "capacity": 2},
        "properties": {"model": {"format": "OpenAI", "name": MODEL, "version": "1"}},
    }
    assert put["query"]["api-version"] == "2024-10-01"


def test_deploy_with_wait_answers_201_once_succeeded(api: Api, sim: SimulatorControl) -> None:
    response = api.put("waited", {"model": MODEL}, wait="20")
    assert response.status_code == 201, response.text
    assert response.json()["provisioningState"] == "Succeeded"
    assert "Location" not in response.headers


def test_unchanged_put_answers_200_without_arm_put_even_with_full_quota(api: Api, sim: SimulatorControl) -> None:
    deploy(api, "steady", {"model": MODEL, "sku": {"name": "Standard", "capacity": 10}})
    # With the quota used up, ARM itself would refuse a re-PUT with InsufficientQuota.
    sim.patch_config({"accounts": [{**MAIN.simulator_entry(), "quota": 10}, EAST.simulator_entry()]})
    sim.clear_requests()
    again = api.put("steady", {"model": MODEL, "sku": {"name": "Standard", "capacity": 10}})
    assert again.status_code == 200, again.text
    assert again.json()["provisioningState"] == "Succeeded"
    assert mutations(sim) == []


def test_model_and_capacity_change_together_is_refused(api: Api, sim: SimulatorControl) -> None:
    deploy(api, "two-step")
    sim.clear_requests()
    response = api.put("two-step", {"model": OTHER_MODEL, "sku": {"name": "Standard", "capacity": 5}})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "ModelAndCapacityChange"
    assert mutations(sim) == []


def test_scale_valid_capacity(api: Api, sim: SimulatorControl) -> None:
    deploy(api, "scaled")
    response = api.patch("scaled", {"capacity": 5}, wait="15")
    assert response.status_code == 200, response.text
    assert response.json()["sku"] == {"name": "Standard", "capacity": 5}
    [patch] = arm_requests(sim, "PATCH")
    assert patch["body"] == {"sku": {"name": "Standard", "capacity": 5}}
    assert any(r["path"].endswith("/deployments/scaled/skus") for r in arm_requests(sim, "GET"))
    assert api.get("scaled").json()["sku"]["capacity"] == 5


def test_scale_answers_202_with_location_without_wait(api: Api, sim: SimulatorControl) -> None:
    deploy(api, "scaled-async")
    response = api.patch("scaled-async", {"sku": {"name": "GlobalStandard", "capacity": 3}})
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == "/api/deployments/scaled-async?account=main"
    final = poll_until_terminal(api, response.headers["Location"])
    assert final["sku"] == {"name": "GlobalStandard", "capacity": 3}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"capacity": 301}, "maximum is 300"),
        ({"sku": {"name": "ProvisionedManaged", "capacity": 30}}, "steps of 25"),
    ],
)
def test_scale_invalid_capacity_is_400_and_nothing_patched(
    api: Api, sim: SimulatorControl, body: dict[str, Any], fragment: str
) -> None:
    deploy(api, "bounded")
    sim.clear_requests()
    response = api.patch("bounded", body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "InvalidCapacity" and fragment in error["message"]
    assert mutations(sim) == []


def test_delete_is_202_then_204_and_idempotent(api: Api, sim: SimulatorControl) -> None:
    deploy(api, "doomed")
    first = api.delete("doomed")
    assert first.status_code == 202
    assert first.headers["Location"] == "/api/deployments/doomed?account=main"
    deadline = time.monotonic() + 10
    status = first.status_code
    while status == 202 and time.monotonic() < deadline:
        time.sleep(0.2)
        status = api.delete("doomed").status_code
    assert status == 204
    assert len(arm_requests(sim, "DELETE")) == 1  # repeats while Deleting do not send another DELETE
    gone = api.get("doomed")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "DeploymentNotFound"
    assert api.delete("never-existed").status_code == 204


def test_delete_with_wait_answers_204(api: Api, sim: SimulatorControl) -> None:
    deploy(api, "doomed-wait")
    assert api.delete("doomed-wait", wait="15").status_code == 204


def test_list_follows_paging(api: Api, sim: SimulatorControl) -> None:
    seeded = [
        {
            "name": f"dep-{i:02d}",
            "model": {"format": "OpenAI", "name": MODEL, "version": "1"},
            "sku": {"name": "Standard", "capacity": 1},
        }
        for i in range(25)
    ]
    sim.patch_config({"accounts": [{**MAIN.simulator_entry(), "deployments": seeded}, EAST.simulator_entry()]})
    sim.reset()
    response = api.get()
    assert response.status_code == 200
    names = [item["name"] for item in response.json()["value"]]
    assert names == [f"dep-{i:02d}" for i in range(25)]
    assert all(item["account"] == "main" for item in response.json()["value"])
    assert len(arm_requests(sim, "GET")) == 3  # pages of 10, 10 and 5


def test_list_of_other_account(api: Api, sim: SimulatorControl) -> None:
    response = api.get(account="east")
    assert response.status_code == 200
    listed = response.json()["value"]
    assert [item["name"] for item in listed] == [seed["name"] for seed in EAST.deployments]
    assert {item["account"] for item in listed} == {"east"}
    assert arm_requests(sim, "GET")[0]["path"].endswith("/accounts/aoai-eastus2/deployments")


def test_cross_region_deploy_from_another_alias(api: Api, sim: SimulatorControl) -> None:
    response = api.put("from-east", {"model": EAST_MODEL, "source": "east"}, wait="15")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["model"]["source"] == "east"
    [put] = arm_requests(sim, "PUT")
    assert put["path"].endswith("/accounts/aoai-swedencentral/deployments/from-east")
    assert put["body"]["properties"]["model"]["source"] == EAST.arm_id


def test_model_of_another_account_without_source_is_arm_error(api: Api, sim: SimulatorControl) -> None:
    response = api.put("wrong-place", {"model": EAST_MODEL})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "DeploymentModelNotSupported"


def test_request_conflict_is_retried_until_the_other_operation_ends(api: Api, sim: SimulatorControl) -> None:
    def second_statuses() -> list[int]:
        return [r["status"] for r in arm_requests(sim, "PUT") if r["path"].endswith("/second")]

    sim.hold_operations()  # the first change stays in progress until released: the window is explicit
    first = api.put("first", {"model": MODEL})
    assert first.status_code == 202
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        second = pool.submit(api.put, "second", {"model": OTHER_MODEL}, wait="10")
        # ARM refuses a second change on the same account while the first runs; the service retries.
        deadline = time.monotonic() + 30
        while 409 not in second_statuses() and not second.done() and time.monotonic() < deadline:
            time.sleep(0.05)
        sim.release_operations()
        answer = second.result(timeout=60)
    assert answer.status_code == 201, answer.text
    statuses = second_statuses()
    assert statuses[0] == 409 and statuses[-1] == 201


def test_request_conflict_surfaces_as_409_with_retry_after(api: Api, sim: SimulatorControl) -> None:
    sim.add_fault(
        scope="arm",
        method="PUT",
        status=409,
        code="RequestConflict",
        message="Another operation is being performed on the parent resource.",
        count=-1,
    )
    # Retried for ARM_CONFLICT_RETRY_SECONDS (4 in these tests), then answered: the call returns at all.
    response = api.put("blocked", {"model": MODEL})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "RequestConflict"
    assert int(response.headers["Retry-After"]) >= 1
    assert len(arm_requests(sim, "PUT")) >= 2


@pytest.mark.parametrize(("status", "headers"), [(429, {"retryAfter": 1}), (503, {}), (500, {})])
def test_transient_arm_errors_are_retried(
    api: Api, sim: SimulatorControl, status: int, headers: dict[str, Any]
) -> None:
    sim.add_fault(scope="arm", method="PUT", status=status, code="Throttled", count=2, **headers)
    response = api.put("resilient", {"model": MODEL}, wait="15")
    assert response.status_code == 201, response.text
    assert [r["status"] for r in arm_requests(sim, "PUT")] == [status, status, 201]


def test_throttling_that_does_not_end_is_passed_on_with_retry_after(api: Api, sim: SimulatorControl) -> None:
    sim.add_fault(scope="arm", method="GET", status=429, code="TooManyRequests", retryAfter=1, count=-1)
    response = api.get("anything")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "TooManyRequests"
    assert response.headers["Retry-After"] == "1"


def test_quota_exceeded_passes_arm_error_through(api: Api, sim: SimulatorControl) -> None:
    sim.patch_config({"accounts": [{**MAIN.simulator_entry(), "quota": 10}, EAST.simulator_entry()]})
    response = api.put("too-big", {"model": MODEL, "sku": {"name": "GlobalStandard", "capacity": 20}})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "InsufficientQuota"
    assert "quota limit is 10" in error["message"]
    assert api.get("too-big").status_code == 404


def test_failed_provisioning_is_reported(api: Api, sim: SimulatorControl) -> None:
    sim.patch_config({"accounts": [{**MAIN.simulator_entry(), "failingModels": [OTHER_MODEL]}, EAST.simulator_entry()]})
    response = api.put("broken", {"model": OTHER_MODEL}, wait="15")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "DeploymentFailed"
    assert api.get("broken").json()["provisioningState"] == "Failed"


def test_request_ids_are_echoed_and_passed_to_arm(api: Api, sim: SimulatorControl) -> None:
    response = api.call("GET", "/deployments", headers={"x-ms-client-request-id": "trace-42"})
    assert response.headers["x-request-id"] == "trace-42"
    assert arm_requests(sim)[0]["clientRequestId"] == "trace-42"
    generated = api.get()
    assert len(generated.headers["x-request-id"]) == 36


def test_unknown_account_alias_is_404(api: Api, sim: SimulatorControl) -> None:
    response = api.get(account="nowhere")
    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "AccountNotFound",
        "message": "No account with alias 'nowhere' is configured. Use one of: east, main.",
        "target": "account",
    }
    assert sim.requests() == []


BAD_INPUTS = [
    ("PUT", "/deployments/ok-name", b"", 400, "MissingRequestBody"),
    ("PUT", "/deployments/ok-name", b"{not json", 400, "InvalidJson"),
    ("PUT", "/deployments/ok-name", b'["model"]', 400, "InvalidJson"),
    ("PUT", "/deployments/ok-name", b'{"sku": {"capacity": 1}}', 400, "MissingField"),
    ("PUT", "/deployments/ok-name", b'{"model": "m.ft-1", "scaleSettings": {}}', 400, "UnknownField"),
    ("PUT", "/deployments/ok-name", b'{"model": "has space"}', 400, "InvalidField"),
    (
        "PUT",
        "/deployments/ok-name",
        b'{"model": "m.ft-1", "sku": {"name": "Mega", "capacity": 1}}',
        400,
        "InvalidField",
    ),
    (
        "PUT",
        "/deployments/ok-name",
        b'{"model": "m.ft-1", "sku": {"name": "Standard", "capacity": 0}}',
        400,
        "InvalidField",
    ),
    (
        "PUT",
        "/deployments/ok-name",
        b'{"model": "m.ft-1", "sku": {"name": "Standard", "capacity": "2"}}',
        400,
        "InvalidField",
    ),
    ("PUT", "/deployments/ok-name", b'{"model": "m.ft-1", "source": "mars"}', 400, "InvalidSource"),
    ("PUT", "/deployments/ok-name?wait=999", b'{"model": "m.ft-1"}', 400, "InvalidQueryParameter"),
    ("PUT", "/deployments/-bad", b'{"model": "m.ft-1"}', 400, "InvalidDeploymentName"),
    ("PUT", "/deployments/" + "x" * 65, b'{"model": "m.ft-1"}', 400, "InvalidDeploymentName"),
    ("PUT", "/deployments/ok-name", b'{"model": "' + b"m" * 70_000 + b'"}', 413, "PayloadTooLarge"),
    ("PATCH", "/deployments/ok-name", b"{}", 400, "MissingRequestBody"),
    ("PATCH", "/deployments/ok-name", b'{"capacity": -3}', 400, "InvalidField"),
    ("PATCH", "/deployments/ok-name", b'{"capacity": 2, "sku": {"capacity": 2}}', 400, "InvalidRequest"),
    ("PATCH", "/deployments/ok-name", b'{"replicas": 2}', 400, "UnknownField"),
    ("DELETE", "/deployments/a", b"", 400, "InvalidDeploymentName"),
    ("GET", "/deployments/bad%20name", b"", 400, "InvalidDeploymentName"),
    ("GET", "/deployments?account=mars", b"", 404, "AccountNotFound"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), BAD_INPUTS)
def test_bad_input_is_4xx_and_nothing_reaches_arm(
    api: Api, sim: SimulatorControl, method: str, path: str, body: bytes, status: int, code: str
) -> None:
    response = api.call(method, path, data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert response.headers["x-request-id"]
    assert arm_requests(sim) == []


def test_concurrent_mutations_on_one_account_all_land(api: Api, sim: SimulatorControl) -> None:
    sim.patch_config({"provisioningDelaySeconds": 0.3})
    names = [f"burst-{i}" for i in range(4)]
    with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        statuses = list(pool.map(lambda n: api.put(n, {"model": MODEL}, wait="20").status_code, names))
    assert statuses == [201] * len(names)
    listed = {item["name"]: item["provisioningState"] for item in api.get().json()["value"] if item["name"] in names}
    assert listed == dict.fromkeys(names, "Succeeded")


def test_token_endpoint_down_is_503_identity_unavailable(stack: Stack, sim: SimulatorControl) -> None:
    api = stack.start_host()  # a fresh process: no token cached yet
    sim.add_fault(scope="identity", status=503, message="identity endpoint down", count=-1)
    response = api.get()
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "IdentityUnavailable"
    assert "ManagedIdentityCredential" in error["message"] and "IDENTITY_ENDPOINT" in error["message"]
    assert arm_requests(sim) == []
    sim.clear_faults()
    # MSAL holds back after a 5xx from the token endpoint (5 s by default), then the service recovers by itself.
    deadline = time.monotonic() + 20
    status = 503
    while status == 503 and time.monotonic() < deadline:
        time.sleep(0.5)
        status = api.get().status_code
    assert status == 200


def test_no_identity_at_all_still_serves_and_says_503(stack: Stack, sim: SimulatorControl) -> None:
    api = stack.start_host(
        IDENTITY_ENDPOINT="http://127.0.0.1:9/msi/token", AZURE_TOKEN_CREDENTIALS="ManagedIdentityCredential"
    )
    response = api.get()
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "IdentityUnavailable"


def test_missing_setting_is_500_configuration_error_naming_it(stack: Stack, sim: SimulatorControl) -> None:
    api = stack.configured(AZURE_OPENAI_ACCOUNTS="{not json")
    response = api.get()
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "ConfigurationError"
    assert "AZURE_OPENAI_ACCOUNTS" in error["message"]


def test_function_keys_are_checked_when_the_host_is_given_one(stack: Stack, sim: SimulatorControl) -> None:
    api = stack.start_host("--function-key", "local-key-1", AUTH_MODE="keys")
    assert api.get().status_code == 401
    assert api.call("GET", "/deployments", headers={"x-functions-key": "local-key-1"}).status_code == 200
    assert api.call("GET", "/deployments", params={"code": "local-key-1"}).status_code == 200
