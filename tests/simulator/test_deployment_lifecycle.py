"""PUT / PATCH / DELETE as long-running operations, polled the ways ARM clients poll them."""

from __future__ import annotations

import time
from typing import Any

import requests

from localdev.simulator.control_client import SimulatorControl

from .conftest import ACCOUNT, FAILING_MODEL, FT_MODEL, SUB, Arm, ClockedCreate, deployment_body


def poll_async_operation(arm: Arm, url: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Poll an Azure-AsyncOperation URL until a terminal status; returns every body seen."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = arm.call("GET", url)
        assert response.status_code == 200, response.text
        seen.append(response.json())
        if seen[-1]["status"] in ("Succeeded", "Failed", "Canceled"):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"operation did not finish: {seen[-1]}")


def poll_location(arm: Arm, url: str, timeout: float = 5.0) -> requests.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = arm.call("GET", url)
        if response.status_code != 202:
            return response
        assert response.headers["Location"] == url
        assert "Retry-After" in response.headers
        time.sleep(0.05)
    raise AssertionError("Location polling did not finish")


def test_put_creates_through_accepted_and_creating_to_succeeded(arm: Arm) -> None:
    created = arm.put("ft-1", deployment_body(capacity=5))
    assert created.status_code == 201
    body = created.json()
    assert body["properties"]["provisioningState"] == "Accepted"
    assert body["id"] == f"{arm.deployments()}/ft-1"
    assert body["type"] == "Microsoft.CognitiveServices/accounts/deployments"
    assert body["sku"] == {"name": "Standard", "capacity": 5}
    assert body["etag"].startswith('"') and body["etag"].endswith('"')
    assert body["properties"]["raiPolicyName"] == "Microsoft.DefaultV2"
    assert body["properties"]["rateLimits"][1] == {"key": "token", "renewalPeriod": 60, "count": 5000}
    assert "tags" not in body
    async_url = created.headers["Azure-AsyncOperation"]
    assert f"/subscriptions/{SUB}/providers/Microsoft.CognitiveServices/locations/swedencentral/operationStatuses/" in (
        async_url
    )
    assert async_url.endswith("?api-version=2024-10-01")
    assert created.headers["Retry-After"] == "0"

    statuses = poll_async_operation(arm, async_url)
    assert statuses[0]["status"] == "Accepted"
    assert "InProgress" in {status["status"] for status in statuses}
    assert statuses[-1]["status"] == "Succeeded"
    assert "endTime" in statuses[-1] and "startTime" in statuses[-1]
    assert statuses[-1]["name"] == async_url.split("/")[-1].split("?")[0]
    assert arm.state_of("ft-1") == "Succeeded"


def test_create_shows_creating_after_the_first_third_of_the_delay() -> None:
    """On a clock the test sets, so no read can land late on a busy machine."""
    create = ClockedCreate("ft-2", start=50.0, duration=9)
    seen = []
    for elapsed in (0, 2.9, 3, 4.5, 8.9, 9):
        create.now = 50.0 + elapsed
        seen.append(create.deployment.provisioning_state(create.state.settle()))
    assert seen == ["Accepted", "Accepted", "Creating", "Creating", "Creating", "Succeeded"]


def test_create_goes_through_its_states_in_order(arm: Arm) -> None:
    assert arm.put("ft-2", deployment_body()).status_code == 201
    seen = ["Accepted"]
    deadline = time.monotonic() + 10  # a guard against hanging, not a timing assertion
    while seen[-1] != "Succeeded" and time.monotonic() < deadline:
        state = arm.state_of("ft-2")
        if state != seen[-1]:
            seen.append(state)
    assert seen in (["Accepted", "Creating", "Succeeded"], ["Accepted", "Succeeded"])


def test_put_on_existing_deployment_is_200_accepted_then_succeeded(arm: Arm) -> None:
    arm.create_ready("ft-3", capacity=2)
    body = deployment_body(capacity=3)
    body["tags"] = {"owner": "tests"}
    updated = arm.put("ft-3", body)
    assert updated.status_code == 200
    assert updated.json()["properties"]["provisioningState"] == "Accepted"
    assert updated.json()["tags"] == {"owner": "tests"}
    assert poll_async_operation(arm, updated.headers["Azure-AsyncOperation"])[-1]["status"] == "Succeeded"
    assert arm.get("ft-3").json()["sku"]["capacity"] == 3


def test_failing_model_ends_failed_with_an_operation_error(arm: Arm) -> None:
    created = arm.put("broken", deployment_body(model=FAILING_MODEL))
    assert created.status_code == 201
    final = poll_async_operation(arm, created.headers["Azure-AsyncOperation"])[-1]
    assert final["status"] == "Failed"
    assert final["error"]["code"] == "DeploymentFailed"
    assert arm.state_of("broken") == "Failed"


def test_patch_is_202_polled_through_location(arm: Arm) -> None:
    arm.create_ready("ft-4", capacity=2)
    patched = arm.patch("ft-4", {"sku": {"name": "standard", "capacity": 4}, "tags": {"team": "ml"}})
    assert patched.status_code == 202
    assert patched.content == b""
    assert "operationResults" in patched.headers["Location"]
    assert "operationStatuses" in patched.headers["Azure-AsyncOperation"]
    assert "Retry-After" in patched.headers
    assert arm.state_of("ft-4") == "Accepted"

    final = poll_location(arm, patched.headers["Location"])
    assert final.status_code == 200
    assert final.json()["sku"] == {"name": "Standard", "capacity": 4}
    assert final.json()["tags"] == {"team": "ml"}
    assert final.json()["properties"]["provisioningState"] == "Succeeded"


def test_delete_is_202_then_gone_and_deleting_missing_is_204(arm: Arm) -> None:
    arm.create_ready("ft-5")
    deleted = arm.delete("ft-5")
    assert deleted.status_code == 202
    assert arm.state_of("ft-5") == "Deleting"
    listed = arm.call("GET", arm.deployments()).json()["value"]
    assert [(item["name"], item["properties"]["provisioningState"]) for item in listed] == [("ft-5", "Deleting")]

    assert poll_location(arm, deleted.headers["Location"]).status_code == 204
    assert arm.get("ft-5").status_code == 404
    assert poll_async_operation(arm, deleted.headers["Azure-AsyncOperation"])[-1]["status"] == "Succeeded"
    assert arm.delete("ft-5").status_code == 204


def test_any_running_operation_on_the_account_blocks_writes_with_409(arm: Arm) -> None:
    arm.create_ready("ft-6")
    assert arm.put("ft-7", deployment_body()).status_code == 201  # now running

    for response in (
        arm.put("ft-8", deployment_body()),
        arm.patch("ft-6", {"sku": {"name": "Standard", "capacity": 2}}),
        arm.delete("ft-6"),
    ):
        assert response.status_code == 409
        error = response.json()["error"]
        assert error["code"] == "RequestConflict"
        assert error["message"] == (
            "Another operation is being performed on the parent resource "
            f"'/subscriptions/{SUB}/resourceGroups/rg-models/providers/Microsoft.CognitiveServices/accounts/"
            f"{ACCOUNT}'. Please try again later."
        )
    arm.wait_until(lambda: arm.state_of("ft-7") == "Succeeded")
    assert arm.delete("ft-6").status_code == 202
    assert arm.delete("ft-6").status_code == 409  # already deleting


def test_zero_delay_completes_synchronously(arm: Arm, control: SimulatorControl) -> None:
    control.patch_config({"provisioningDelaySeconds": 0})
    created = arm.put("sync", deployment_body())
    assert created.status_code == 201
    assert created.json()["properties"]["provisioningState"] == "Succeeded"
    assert "Azure-AsyncOperation" not in created.headers
    assert arm.put("sync", deployment_body()).status_code == 200

    patched = arm.patch("sync", {"sku": {"name": "Standard", "capacity": 2}})
    assert patched.status_code == 200
    assert patched.json()["sku"]["capacity"] == 2

    assert (
        arm.put("sync-broken", deployment_body(model=FAILING_MODEL)).json()["properties"]["provisioningState"]
        == "Failed"
    )
    assert arm.delete("sync").status_code == 200
    assert arm.get("sync").status_code == 404


def test_put_operation_result_through_location_url(arm: Arm) -> None:
    created = arm.put("ft-9", deployment_body())
    results_url = created.headers["Azure-AsyncOperation"].replace("operationStatuses", "operationResults")
    final = poll_location(arm, results_url)
    assert final.status_code == 200
    assert final.json()["name"] == "ft-9"

    failed = arm.put("ft-10", deployment_body(model=FAILING_MODEL))
    failed_result = poll_location(
        arm, failed.headers["Azure-AsyncOperation"].replace("operationStatuses", "operationResults")
    )
    assert failed_result.status_code == 400
    assert failed_result.json()["error"]["code"] == "DeploymentFailed"


def test_unknown_operation_is_404(arm: Arm) -> None:
    url = f"/subscriptions/{SUB}/providers/Microsoft.CognitiveServices/locations/swedencentral/operationStatuses/nope"
    response = arm.call("GET", url)
    assert response.status_code == 404
    assert "error" in response.json()


def test_operation_urls_need_a_token_too(arm: Arm) -> None:
    created = arm.put("ft-11", deployment_body())
    response = arm.session.get(created.headers["Azure-AsyncOperation"], timeout=10)
    assert response.status_code == 401


def test_system_data_records_the_calling_identity(arm: Arm, control: SimulatorControl) -> None:
    arm.create_ready("ft-12")
    system = arm.get("ft-12").json()["systemData"]
    assert system["createdBy"] == control.get_config()["principalId"]
    assert system["createdAt"].endswith("Z")
    assert arm.get("ft-12").json()["properties"]["model"]["name"] == FT_MODEL
