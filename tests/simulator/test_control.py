"""The /_sim control API: request log, stats, state, config and reset."""

from __future__ import annotations

import time

import requests

from localdev.simulator import RunningSimulator
from localdev.simulator.control_client import SimulatorControl

from .conftest import ACCOUNT, BASE_CONFIG, DELAY, FT_MODEL, RG, SUB, Arm, ClockedCreate, deployment_body, fetch_token


def test_request_log_records_identity_and_arm_calls(
    simulator: RunningSimulator, arm: Arm, control: SimulatorControl
) -> None:
    fetch_token(simulator.base_url)
    arm.call(
        "PUT",
        f"{arm.deployments()}/logged",
        deployment_body(),
        headers={"x-ms-client-request-id": "cid-1", "x-ms-correlation-request-id": "corr-1"},
    )
    control.health()  # control traffic is not logged

    identity, put = control.requests()
    assert identity["scope"] == "identity"
    assert identity["path"] == "/msi/token"
    assert identity["query"]["resource"] == "https://management.azure.com"
    assert identity["status"] == 200
    assert put["seq"] > identity["seq"]
    assert put["time"] >= identity["time"]
    assert put == {
        **put,
        "scope": "arm",
        "method": "PUT",
        "path": f"{arm.deployments()}/logged",
        "query": {"api-version": "2024-10-01"},
        "status": 201,
        "clientRequestId": "cid-1",
        "correlationId": "corr-1",
        "body": deployment_body(),
        "fault": None,
    }
    assert [entry["scope"] for entry in control.requests("arm")] == ["arm"]

    control.clear_requests()
    assert control.requests() == []


def test_stats_count_tokens_requests_and_connections(
    simulator: RunningSimulator, arm: Arm, control: SimulatorControl
) -> None:
    fetch_token(simulator.base_url)
    fetch_token(simulator.base_url, resource="https://cognitiveservices.azure.com")
    for _ in range(3):
        arm.call("GET", arm.deployments())  # one keep-alive session: one connection

    stats = control.stats()
    assert stats["tokenRequests"] == {"https://management.azure.com": 1, "https://cognitiveservices.azure.com": 1}
    assert stats["requests"]["arm"] == 3
    assert stats["requests"]["identity"] == 2
    assert stats["connections"] == 3  # two one-shot token requests + the ARM session

    with requests.Session() as fresh:
        fresh.get(f"{simulator.base_url}{arm.deployments()}", timeout=10)
    assert control.stats()["connections"] == 4


def test_state_shows_accounts_deployments_and_operations(arm: Arm, control: SimulatorControl) -> None:
    arm.put("observed", deployment_body(capacity=3))
    state = control.state()
    main = next(account for account in state["accounts"] if account["accountName"] == ACCOUNT)
    assert main["usedCapacity"] == 3
    assert main["busy"] is True
    assert [item["name"] for item in main["deployments"]] == ["observed"]
    assert state["operations"][0]["kind"] == "create"
    assert state["operations"][0]["status"] == "Accepted"


def test_patch_config_keeps_deployments_and_put_config_resets(arm: Arm, control: SimulatorControl) -> None:
    arm.create_ready("kept")
    control.add_fault(scope="arm", status=500, pathContains="/never")
    merged = control.patch_config({"provisioningDelaySeconds": 0})
    assert merged["provisioningDelaySeconds"] == 0
    assert merged["accounts"][0]["accountName"] == ACCOUNT
    assert arm.get("kept").status_code == 200
    assert len(control.faults()) == 1

    control.set_config(BASE_CONFIG)
    assert arm.get("kept").status_code == 404
    assert control.faults() == []
    assert control.get_config()["provisioningDelaySeconds"] == 0.3


def test_reset_restores_seeded_deployments(arm: Arm, control: SimulatorControl) -> None:
    seeded = {
        "accounts": [
            {
                "subscriptionId": SUB,
                "resourceGroup": RG,
                "accountName": ACCOUNT,
                "deployments": [{"name": "seed", "model": {"format": "OpenAI", "name": FT_MODEL}}],
            }
        ]
    }
    control.set_config(seeded)
    control.patch_config({"provisioningDelaySeconds": 0})
    assert arm.delete("seed").status_code == 200
    arm.put("extra", deployment_body())
    control.add_fault(scope="arm", status=500, pathContains="/never")

    control.reset()
    names = [item["name"] for item in arm.call("GET", arm.deployments()).json()["value"]]
    assert names == ["seed"]
    assert control.faults() == []
    assert [entry["method"] for entry in control.requests()] == ["GET"]  # only the LIST since the reset
    assert arm.get("seed").json()["sku"] == {"name": "Standard", "capacity": 1}


def test_bad_configs_are_refused_with_a_clear_message(simulator: RunningSimulator, control: SimulatorControl) -> None:
    cases = [
        ({"pageSize": 0}, "pageSize"),
        ({"accounts": [{"accountName": "a"}]}, "subscriptionId"),
        ({"provisioningDelay": 1}, "provisioningDelay"),
        ({"skus": {"Standard": {"minimum": "one"}}}, "skus.Standard.minimum"),
        (
            {
                "accounts": [
                    {
                        "subscriptionId": "s",
                        "resourceGroup": "r",
                        "accountName": "a",
                        "deployments": [
                            {"name": "d", "model": {"format": "OpenAI", "name": "m"}, "sku": {"name": "X"}}
                        ],
                    }
                ]
            },
            "sku.name",
        ),
    ]
    for config, named in cases:
        response = requests.put(f"{simulator.base_url}/_sim/config", json=config, timeout=10)
        assert response.status_code == 400, config
        assert named in response.json()["error"]["message"]
    assert control.get_config()["accounts"][0]["accountName"] == ACCOUNT  # unchanged


def test_unknown_paths_are_404_and_logged_as_other(simulator: RunningSimulator, control: SimulatorControl) -> None:
    response = requests.get(f"{simulator.base_url}/metadata/identity/oauth2/token", timeout=10)
    assert response.status_code == 404
    assert control.requests("other")[0]["path"] == "/metadata/identity/oauth2/token"


def test_held_operations_stay_where_they_are_until_released(arm: Arm, control: SimulatorControl) -> None:
    control.hold_operations()
    assert arm.put("held", deployment_body()).status_code == 201
    time.sleep(DELAY * 2)  # twice the delay: without the hold it would have succeeded by now
    assert arm.state_of("held") == "Accepted"
    assert control.state()["operationsHeld"] is True
    # Still inside the provisioning window: ARM refuses another change on the account.
    refused = arm.put("second", deployment_body())
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "RequestConflict"

    control.release_operations()
    arm.wait_until(lambda: arm.state_of("held") == "Succeeded")
    assert arm.put("second", deployment_body()).status_code == 201


def test_a_reset_releases_held_operations(arm: Arm, control: SimulatorControl) -> None:
    control.hold_operations()
    control.reset()
    assert control.state()["operationsHeld"] is False
    arm.create_ready("after-reset")


def test_the_operations_clock_leaves_out_the_time_they_were_held() -> None:
    create = ClockedCreate("x", start=100.0, duration=10)
    state, deployment = create.state, create.deployment
    create.now = 104.0
    state.hold()
    create.now = 1_000.0  # any time later: a held operation does not move
    state.settle()
    assert deployment.provisioning_state(state.now()) == "Creating"
    state.release()
    create.now = 1_005.9  # 4 s ran before the hold, 5.9 after: 0.1 s left
    assert not create.operation.is_done(state.settle())
    create.now = 1_006.0
    state.settle()
    assert deployment.operation is None and deployment.final_state == "Succeeded"
