"""Deployments triggered through a Storage queue: the real azure-storage-queue client as the producer, Azurite's
queues, the local host's queue trigger (the Functions host's polling, retries and poison queue) and the simulator.

No HTTP call drives a change here; the HTTP API is used only to look at the audit trail.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from localdev.simulator.control_client import SimulatorControl
from tests.e2e.conftest import Api, Stack
from tests.e2e.queues import Queues

FT = "gpt-4o-mini-2024-07-18.ft-7c1d2a3b4e5f"
REQUESTS, RESULTS = "e2e-requests", "e2e-results"
FAST_QUEUES = {
    "DEPLOYMENT_REQUESTS_QUEUE": REQUESTS,
    "DEPLOYMENT_RESULTS_QUEUE": RESULTS,
    "QUEUE_RECHECK_SECONDS": "1",
    "ARM_RETRY_TOTAL": "0",
    # host.json's extensions.queues, overridden by app settings as in Azure: poll and retry quickly here.
    "AzureFunctionsJobHost__extensions__queues__maxPollingInterval": "00:00:00.3",
    "AzureFunctionsJobHost__extensions__queues__visibilityTimeout": "00:00:00.2",
}


@pytest.fixture(scope="module")
def queue_host(stack: Stack) -> tuple[Api, Path]:
    api = stack.start_host(**FAST_QUEUES)
    return api, stack.folder / f"host-{len(stack.hosts) - 1}.log"


@pytest.fixture
def queues(stack: Stack, queue_host: tuple[Api, Path], sim: SimulatorControl) -> Iterator[Queues]:
    queues = Queues(stack.azurite.connection_string, REQUESTS, RESULTS)
    queues.drain()
    queues.poison.clear_messages()
    yield queues
    queues.close()


def deploy(name: str, request_id: str, **body: object) -> dict[str, object]:
    return {
        "action": "deploy",
        "name": name,
        "account": "main",
        "requestId": request_id,
        "requestedBy": "training-pipeline run 42",
        "body": {"model": FT, "sku": {"name": "Standard", "capacity": 1}, **body},
    }


def writes(sim: SimulatorControl, name: str, method: str) -> int:
    return sum(
        1
        for entry in sim.requests("arm")
        if entry["method"] == method and entry["path"].endswith(f"/deployments/{name}")
    )


def test_deploy_scale_delete_by_message_plain_and_base64(
    queues: Queues, sim: SimulatorControl, queue_host: tuple[Api, Path]
) -> None:
    api, _ = queue_host
    queues.send(deploy("q-bot", "q-deploy-1", ttlHours=48, keepAlive=True))
    created = queues.result_for("q-deploy-1")
    assert created["status"] == "Succeeded" and created["error"] is None
    assert created["action"] == "deploy" and created["name"] == "q-bot" and created["account"] == "main"
    view = created["deployment"]
    assert view["provisioningState"] == "Succeeded" and view["model"]["name"] == FT
    assert view["keepAlive"] is True and view["expiresAt"].endswith("Z")

    queues.send({"action": "scale", "name": "q-bot", "requestId": "q-scale-1", "body": {"capacity": 2}}, base64=True)
    scaled = queues.result_for("q-scale-1")
    assert scaled["status"] == "Succeeded" and scaled["deployment"]["sku"]["capacity"] == 2
    assert scaled["deployment"]["expiresAt"] == view["expiresAt"]  # a scale keeps the lifecycle tags

    queues.send({"action": "delete", "name": "q-bot", "account": "main", "requestId": "q-delete-1"})
    deleted = queues.result_for("q-delete-1")
    assert deleted["status"] == "Succeeded" and deleted["deployment"] is None
    assert api.get("q-bot").status_code == 404

    trail = api.call("GET", "/audit", params={"deployment": "q-bot"}).json()["value"]
    assert {record["action"] for record in trail} >= {"create", "scale", "delete"}
    for record in trail:
        assert record["caller"]["name"] == f"queue:{REQUESTS}"
        if record["action"] == "create":
            assert record["request"]["requestedBy"] == "training-pipeline run 42"
        assert record["requestId"] in ("q-deploy-1", "q-scale-1", "q-delete-1")


def test_long_provisioning_does_not_hold_a_worker(
    queues: Queues, sim: SimulatorControl, queue_host: tuple[Api, Path]
) -> None:
    _, log = queue_host
    sim.hold_operations()
    queues.send(deploy("q-slow", "q-slow-1"))
    deadline = time.monotonic() + 15
    while not _running(log, "q-slow-1") and time.monotonic() < deadline:
        time.sleep(0.1)
    # The trigger has returned ("Running") while ARM still provisions: nothing holds a worker meanwhile.
    assert _running(log, "q-slow-1")
    state = {d["name"]: d["properties"]["provisioningState"] for d in sim.state()["accounts"][0]["deployments"]}
    assert state["q-slow"] != "Succeeded"
    assert queues.results_for("q-slow-1", timeout=0.5) == []
    sim.release_operations()
    assert queues.result_for("q-slow-1")["status"] == "Succeeded"


def _running(log: Path, request_id: str) -> bool:
    return f"request {request_id}: ARM is still working" in log.read_text(encoding="utf-8", errors="replace")


def test_invalid_messages_are_rejected_at_once_and_not_retried(queues: Queues, sim: SimulatorControl) -> None:
    queues.send("this is not json")
    queues.send({"action": "explode", "name": "q-x", "requestId": "q-bad-action"})
    queues.send(deploy("q-x", "q-bad-body", sku={"name": "Standard", "capacity": 0}))
    queues.send({**deploy("q-x", "q-bad-alias"), "account": "nowhere"})
    project = {key: value for key, value in deploy("q-x", "q-project").items() if key != "account"}
    queues.send({**project, "project": "p1"})
    for request_id, code in (
        ("q-bad-action", "UnknownAction"),
        ("q-bad-body", "InvalidField"),
        ("q-bad-alias", "AccountNotFound"),
    ):
        result = queues.result_for(request_id)
        assert result["status"] == "Rejected" and result["error"]["code"] == code, result
        assert result["deployment"] is None
    assert queues.result_for("q-project")["status"] == "Rejected"
    time.sleep(1)  # a retried message would be delivered again well within this
    queues.drain()
    rejected = [result for result in queues.seen if result["status"] == "Rejected"]
    assert len(rejected) == 5  # the non-JSON one too (its requestId is the queue message id), each exactly once
    assert queues.poisoned() == [] and queues.waiting() == 0
    assert writes(sim, "q-x", "PUT") == 0


def test_arm_down_is_retried_then_poisoned_with_a_failed_result(queues: Queues, sim: SimulatorControl) -> None:
    sim.add_fault(scope="arm", status=503, count=-1)
    queues.send(deploy("q-down", "q-down-1"))
    failed = queues.result_for("q-down-1", timeout=30)
    assert failed["status"] == "Failed" and failed["attempts"] == 5
    assert failed["error"]["code"] in ("ServiceUnavailable", "UpstreamUnavailable")  # ARM's 503, after retries
    deadline = time.monotonic() + 10
    while not queues.poisoned() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(queues.poisoned()) == 1 and "q-down-1" in queues.poisoned()[0]
    sim.clear_faults()


def test_the_same_request_id_makes_one_arm_write(queues: Queues, sim: SimulatorControl) -> None:
    queues.send(deploy("q-once", "q-once-1"))
    first = queues.result_for("q-once-1")
    queues.send(deploy("q-once", "q-once-1"))  # a producer's retry
    both = queues.results_for("q-once-1", count=2)
    assert len(both) == 2 and both[1] == first
    assert writes(sim, "q-once", "PUT") == 1


def test_a_project_message_deploys_and_deletes_a_serverless_endpoint(
    queues: Queues, sim: SimulatorControl, queue_host: tuple[Api, Path]
) -> None:
    api, _ = queue_host
    catalog_phi = "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/1"  # no marketplace needed
    target = {"name": "q-phi", "project": "foundry"}
    queues.send({**target, "action": "deploy", "requestId": "q-phi-1", "body": {"model": catalog_phi}})
    queues.send({**target, "action": "scale", "requestId": "q-phi-scale", "body": {"capacity": 2}})
    created = queues.result_for("q-phi-1")
    assert created["status"] == "Succeeded", json.dumps(created)
    assert created["project"] == "foundry" and "account" not in created
    assert created["deployment"]["model"] == catalog_phi and created["deployment"]["endpointState"] == "Online"
    scale = queues.result_for("q-phi-scale")
    assert scale["status"] == "Rejected" and scale["error"]["code"] == "ScaleNotSupported"

    queues.send({**target, "action": "delete", "requestId": "q-phi-2"})
    assert queues.result_for("q-phi-2")["status"] == "Succeeded"
    assert api.call("GET", "/serverless-endpoints/q-phi", params={"project": "foundry"}).status_code == 404
    trail = api.call("GET", "/audit", params={"deployment": "q-phi"}).json()["value"]
    assert {(record["action"], record["project"]) for record in trail} >= {("create", "foundry"), ("delete", "foundry")}
    assert all(record["caller"]["name"] == f"queue:{REQUESTS}" for record in trail)


def test_a_producer_retry_while_provisioning_gives_one_result(
    queues: Queues, sim: SimulatorControl, queue_host: tuple[Api, Path]
) -> None:
    _, log = queue_host
    sim.hold_operations()
    queues.send(deploy("q-twice", "q-twice-1"))
    deadline = time.monotonic() + 15
    while not _running(log, "q-twice-1") and time.monotonic() < deadline:
        time.sleep(0.1)
    queues.send(deploy("q-twice", "q-twice-1"))  # the producer sends it again while ARM still provisions
    time.sleep(2)  # QUEUE_RECHECK_SECONDS=1: a second re-check loop would be running by now
    sim.release_operations()
    results = queues.results_for("q-twice-1", count=2, timeout=4)
    assert [result["status"] for result in results] == ["Succeeded"]
    assert writes(sim, "q-twice", "PUT") == 1
