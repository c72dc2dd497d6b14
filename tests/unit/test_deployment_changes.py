"""Regression tests for what a change does: the body ARM receives, races with a concurrent delete, the
audit record's action and whether anything changed, and ARM's correlation id on errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.audit import AuditTrail, record_view
from services.audit_store import AuditQuery
from services.auth import Caller
from services.deployments import DeploymentService
from services.errors import Conflict, DeploymentNotFound, NotFound, ServiceError, UpstreamError
from services.settings import ArmTuning, load_settings
from tests.unit.fake_arm import Call, make_client

SUB = "11111111-1111-1111-1111-111111111111"
ACCOUNTS = {"main": {"subscriptionId": SUB, "resourceGroup": "rg", "accountName": "aoai-main"}}
FT = "gpt-4o-mini-2024-07-18.ft-0123abcd"
FT2 = "gpt-4o-mini-2024-07-18.ft-feedbeef"
CORRELATION = {"x-ms-correlation-request-id": "corr-123"}
Reply = tuple[int, dict[str, str], Any]


def deployment(*, model: str = FT, capacity: int = 4, state: str = "Succeeded", **properties: Any) -> dict[str, Any]:
    tags = properties.pop("tags", None)
    resource: dict[str, Any] = {
        "id": f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/aoai-main"
        "/deployments/d1",
        "name": "d1",
        "sku": {"name": "Standard", "capacity": capacity},
        "properties": {
            "model": {"format": "OpenAI", "name": model, "version": "1"},
            "provisioningState": state,
            **properties,
        },
    }
    if tags is not None:
        resource["tags"] = tags
    return resource


class MemoryAuditStore:
    """Keeps written entities by row key, as Table Storage's upsert does."""

    def __init__(self) -> None:
        self.entities: dict[str, dict[str, Any]] = {}

    def write(self, entity: dict[str, Any]) -> None:
        self.entities[entity["RowKey"]] = dict(entity)

    def query(self, asked: AuditQuery) -> tuple[list[dict[str, Any]], str | None]:
        return sorted(self.entities.values(), key=lambda e: e["RowKey"]), None

    def records(self) -> list[dict[str, Any]]:
        return [record_view(entity) for entity in self.query(AuditQuery({}, None, None, 50, None))[0]]


def service(handler: Any) -> tuple[DeploymentService, list[Call]]:
    settings = load_settings({"AZURE_OPENAI_ACCOUNTS": json.dumps(ACCOUNTS)})
    client, transport, _ = make_client(handler, tuning=ArmTuning(poll_interval_seconds=1))
    return DeploymentService(settings, client), transport.calls


def trail(store: MemoryAuditStore) -> AuditTrail:
    return AuditTrail(Caller(object_id="oid-1", name="tester"), "req-1", store)


def writes(calls: list[Call]) -> list[Call]:
    return [call for call in calls if call.method != "GET"]


def test_model_swap_keeps_content_filter_upgrade_option_and_tags() -> None:
    current = deployment(raiPolicyName="Strict-Filter", versionUpgradeOption="NoAutoUpgrade", tags={"team": "a"})

    def handler(call: Call) -> Reply:
        if call.method == "GET":
            return 200, {}, current
        return 200, {}, {**current, "properties": {**call.body["properties"], "provisioningState": "Succeeded"}}

    svc, calls = service(handler)
    svc.put(None, "d1", json.dumps({"model": FT2}).encode())
    [put] = writes(calls)
    assert put.body == {
        "sku": {"name": "Standard", "capacity": 4},
        "properties": {
            "model": {"format": "OpenAI", "name": FT2, "version": "1"},
            "raiPolicyName": "Strict-Filter",
            "versionUpgradeOption": "NoAutoUpgrade",
        },
        "tags": {"team": "a"},
    }


def test_put_fields_that_are_sent_replace_the_current_ones() -> None:
    current = deployment(raiPolicyName="Strict-Filter", tags={"team": "a"})

    svc, calls = service(lambda call: (200, {}, current))
    svc.put(None, "d1", json.dumps({"model": FT, "raiPolicyName": "Other", "tags": {}}).encode())
    [put] = writes(calls)
    assert put.body["properties"]["raiPolicyName"] == "Other"
    assert put.body["tags"] == {}


def test_deployment_deleted_while_a_put_waits_is_404_not_500() -> None:
    """The operation succeeds, then the deployment is gone: another request deleted it meanwhile."""
    state = {"gets": 0}

    def handler(call: Call) -> Reply:
        if call.method == "PUT":
            return 201, {"Azure-AsyncOperation": "https://management.example.test/op/1"}, deployment(state="Creating")
        if call.path == "/op/1":
            return 200, {}, {"status": "Succeeded"}
        state["gets"] += 1
        if state["gets"] == 1:
            return 404, {}, {"error": {"code": "DeploymentNotFound", "message": "gone"}}
        return 404, {}, {"error": {"code": "DeploymentNotFound", "message": "gone"}}

    svc, _ = service(handler)
    with pytest.raises(DeploymentNotFound) as raised:
        svc.put(None, "d1", json.dumps({"model": FT}).encode(), wait="30")
    assert raised.value.status == 404
    assert "deleted by another request" in raised.value.message


def test_operation_failing_with_not_found_is_404() -> None:
    def handler(call: Call) -> Reply:
        if call.method == "GET" and call.path.endswith("/d1"):
            return 200, {}, deployment(capacity=4)
        if call.method == "PATCH":
            return 202, {"Location": "https://management.example.test/op/2"}, None
        if call.path.endswith("/skus"):
            return 200, {}, {"value": [{"sku": {"name": "Standard"}, "capacity": {"minimum": 1, "maximum": 50}}]}
        return 404, {}, {"error": {"code": "NotFound", "message": "The deployment was deleted."}}

    svc, _ = service(handler)
    with pytest.raises(NotFound) as raised:
        svc.scale(None, "d1", b'{"capacity": 8}', wait="30")
    assert raised.value.code == "DeploymentNotFound"


def test_put_while_the_deployment_is_being_deleted_is_409() -> None:
    svc, calls = service(lambda call: (200, {}, deployment(state="Deleting")))
    with pytest.raises(Conflict) as raised:
        svc.put(None, "d1", json.dumps({"model": FT}).encode(), wait="30")
    assert raised.value.code == "DeploymentBeingDeleted" and raised.value.headers["Retry-After"]
    assert writes(calls) == []


def test_arm_error_carries_the_correlation_id() -> None:
    def handler(call: Call) -> Reply:
        if call.method == "GET":
            return 404, {}, {"error": {"code": "DeploymentNotFound"}}
        return 400, CORRELATION, {"error": {"code": "InsufficientQuota", "message": "no quota"}}

    svc, _ = service(handler)
    with pytest.raises(ServiceError) as raised:
        svc.put(None, "d1", json.dumps({"model": FT}).encode())
    assert raised.value.response_headers()["x-ms-correlation-request-id"] == "corr-123"


def test_failed_provisioning_carries_the_correlation_id() -> None:
    def handler(call: Call) -> Reply:
        if call.method == "PUT":
            return 201, {"Azure-AsyncOperation": "https://management.example.test/op/3", **CORRELATION}, None
        if call.path == "/op/3":
            return 200, {}, {"status": "Failed", "error": {"code": "DeploymentFailed", "message": "broke"}}
        return 404, {}, {"error": {"code": "DeploymentNotFound"}}

    svc, _ = service(handler)
    with pytest.raises(UpstreamError) as raised:
        svc.put(None, "d1", json.dumps({"model": FT}).encode(), wait="30")
    assert raised.value.code == "DeploymentFailed"
    assert raised.value.response_headers()["x-ms-correlation-request-id"] == "corr-123"


def test_a_created_deployment_is_audited_as_create_when_answered_202() -> None:
    def handler(call: Call) -> Reply:
        if call.method == "PUT":
            return 201, {"Azure-AsyncOperation": "https://management.example.test/op/4"}, deployment(state="Creating")
        if call.path == "/op/4":
            return 200, {}, {"status": "InProgress"}
        return 404, {}, {"error": {"code": "DeploymentNotFound"}}

    store = MemoryAuditStore()
    svc, _ = service(handler)
    result = svc.put(None, "d1", json.dumps({"model": FT}).encode(), audit=trail(store))
    assert result.status == 202
    [record] = store.records()
    assert record["action"] == "create" and record["changed"] is True
    assert record["outcome"]["status"] == 202


def test_an_existing_deployment_is_audited_as_update() -> None:
    def handler(call: Call) -> Reply:
        if call.method == "PUT":
            return 200, {}, deployment(model=FT2)
        return 200, {}, deployment()

    store = MemoryAuditStore()
    svc, _ = service(handler)
    svc.put(None, "d1", json.dumps({"model": FT2}).encode(), audit=trail(store))
    assert [r["action"] for r in store.records()] == ["update"]


def test_a_repeated_delete_is_recorded_as_changing_nothing() -> None:
    svc, calls = service(lambda call: (200, {}, deployment(state="Deleting")))
    store = MemoryAuditStore()
    result = svc.delete(None, "d1", audit=trail(store))
    assert result.status == 202
    assert writes(calls) == []
    [record] = store.records()
    assert record["changed"] is False and record["outcome"]["status"] == 202


def test_an_unchanged_put_is_recorded_as_changing_nothing() -> None:
    svc, calls = service(lambda call: (200, {}, deployment()))
    store = MemoryAuditStore()
    assert svc.put(None, "d1", json.dumps({"model": FT}).encode(), audit=trail(store)).status == 200
    assert writes(calls) == []
    [record] = store.records()
    assert record["changed"] is False and record["action"] == "update"


def test_a_scale_records_no_tag_values_in_the_audit_trail() -> None:
    """Tags can be large (50 tags of 256 characters): like PUT, the record keeps the rest of the request."""
    svc, _ = service(lambda call: (200, {}, deployment(capacity=4)))
    store = MemoryAuditStore()
    svc.scale(None, "d1", json.dumps({"tags": {"team": "x" * 256}}).encode(), audit=trail(store))
    [record] = store.records()
    assert record["request"] == {} and "xxxx" not in json.dumps(record)
