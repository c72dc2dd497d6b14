"""Injected faults: statuses with Retry-After, counts, delays, filters, and their effect on state."""

from __future__ import annotations

import time

import pytest
import requests

from localdev.simulator import RunningSimulator
from localdev.simulator.control_client import SimulatorControl

from .conftest import IDENTITY_SECRET, Arm, deployment_body


def test_status_fault_answers_in_arm_shape_with_retry_after(arm: Arm, control: SimulatorControl) -> None:
    fault_id = control.add_fault(scope="arm", method="PUT", status=429, retryAfter=7, retryAfterMs=7000)
    throttled = arm.put("f1", deployment_body())
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert throttled.headers["Retry-After"] == "7"
    assert throttled.headers["retry-after-ms"] == "7000"
    assert throttled.headers["x-ms-request-id"]  # ARM headers on faults too
    assert arm.get("f1").status_code == 404  # state untouched

    assert arm.put("f1", deployment_body()).status_code == 201  # count defaults to 1
    logged = control.requests("arm")
    assert [(entry["method"], entry["status"], entry["fault"]) for entry in logged] == [
        ("PUT", 429, fault_id),
        ("GET", 404, None),
        ("PUT", 201, None),
    ]


def test_count_code_message_and_headers(arm: Arm, control: SimulatorControl) -> None:
    control.add_fault(
        scope="arm",
        pathContains="/DEPLOYMENTS/f2",
        status=503,
        code="ServerBusy",
        message="try later",
        headers={"x-test": "yes"},
        count=2,
    )
    for _ in range(2):
        response = arm.get("f2")
        assert response.status_code == 503
        assert response.json()["error"] == {"code": "ServerBusy", "message": "try later", "details": []}
        assert response.headers["x-test"] == "yes"
    assert arm.get("f2").status_code == 404
    assert arm.get("other").status_code == 404
    assert control.faults()[0]["hits"] == 2
    assert control.faults()[0]["remaining"] == 0


def test_unlimited_fault_until_cleared(arm: Arm, control: SimulatorControl) -> None:
    control.add_fault(scope="any", status=500, count=-1)
    for _ in range(3):
        assert arm.get("x").status_code == 500
    control.clear_faults()
    assert arm.get("x").status_code == 404
    assert control.faults() == []


def test_first_live_fault_in_insertion_order_applies(arm: Arm, control: SimulatorControl) -> None:
    first = control.add_fault(scope="arm", status=500)
    second = control.add_fault(scope="arm", status=502)
    assert arm.get("x").status_code == 500
    assert arm.get("x").status_code == 502
    assert [entry["fault"] for entry in control.requests()] == [first, second]


def test_delay_fault_slows_then_handles_normally(arm: Arm, control: SimulatorControl) -> None:
    delay = control.add_fault(scope="arm", method="GET", delaySeconds=0.3)
    started = time.monotonic()
    assert arm.get("slow").status_code == 404
    assert time.monotonic() - started >= 0.3  # a lower bound: a loaded machine only makes it later
    assert arm.get("slow").status_code == 404
    # The fault was used up by the first call (count 1): the log shows which call it slowed.
    assert [entry["fault"] for entry in control.requests()] == [delay, None]


def test_identity_fault_uses_the_identity_error_shape(simulator: RunningSimulator, control: SimulatorControl) -> None:
    control.add_fault(scope="identity", status=503, retryAfter=1)
    response = requests.get(
        simulator.token_endpoint,
        params={"api-version": "2019-08-01", "resource": "https://management.azure.com"},
        headers={"X-IDENTITY-HEADER": IDENTITY_SECRET},
        timeout=10,
    )
    assert response.status_code == 503
    assert response.json()["statusCode"] == 503
    assert response.headers["Retry-After"] == "1"
    assert control.stats()["tokenRequests"] == {"https://management.azure.com": 1}


def test_arm_fault_does_not_hit_identity(simulator: RunningSimulator, control: SimulatorControl) -> None:
    control.add_fault(scope="arm", status=500)
    response = requests.get(
        simulator.token_endpoint,
        params={"api-version": "2019-08-01", "resource": "https://management.azure.com"},
        headers={"X-IDENTITY-HEADER": IDENTITY_SECRET},
        timeout=10,
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "spec",
    [
        {"status": 500},
        {"scope": "nowhere", "status": 500},
        {"scope": "arm"},
        {"scope": "arm", "status": 500, "count": 0},
        {"scope": "arm", "status": 500, "colour": "red"},
        {"scope": "dataplane", "drop": "sometimes"},
        {"scope": "dataplane", "drop": "beforeAnswer", "status": 503},
    ],
)
def test_invalid_fault_specs_are_refused(simulator: RunningSimulator, control: SimulatorControl, spec: object) -> None:
    response = requests.post(f"{simulator.base_url}/_sim/faults", json=spec, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["message"]


def test_single_fault_can_be_removed(arm: Arm, control: SimulatorControl) -> None:
    fault_id = control.add_fault(scope="arm", status=500, count=-1)
    control.remove_fault(fault_id)
    assert arm.get("x").status_code == 404
