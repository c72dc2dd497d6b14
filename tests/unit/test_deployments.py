"""Deployment service: validation before ARM, body building, no-op detection, capacity rules, error mapping."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.capacity import capacity_problem
from services.deployments import DeploymentService
from services.errors import AccountNotFound, BadRequest, DeploymentNotFound, NotFound, PayloadTooLarge, ValidationError
from services.settings import ArmTuning, load_settings
from tests.unit.fake_arm import Call, make_client

SUB = "11111111-1111-1111-1111-111111111111"
ACCOUNTS = {
    "main": {"subscriptionId": SUB, "resourceGroup": "rg", "accountName": "aoai-main"},
    "east": {"subscriptionId": SUB, "resourceGroup": "rg2", "accountName": "aoai-east"},
}
FT = "gpt-4o-mini-2024-07-18.ft-0123abcd"
SKUS = {
    "value": [
        {"sku": {"name": "Standard"}, "capacity": {"minimum": 1, "maximum": 100, "step": 1}},
        {"sku": {"name": "ProvisionedManaged"}, "capacity": {"minimum": 25, "maximum": 500, "step": 25}},
    ]
}


def resource(
    name: str = "d1",
    *,
    model: str = FT,
    version: str = "1",
    sku: str = "Standard",
    capacity: int = 1,
    state: str = "Succeeded",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/aoai-main"
        f"/deployments/{name}",
        "name": name,
        "sku": {"name": sku, "capacity": capacity},
        "properties": {
            "model": {"format": "OpenAI", "name": model, "version": version},
            "provisioningState": state,
            **extra,
        },
    }


class FakeArm:
    """Answers GET of one deployment (or 404), ListSkus, and records mutations; PUT/PATCH complete at once."""

    def __init__(self, current: dict[str, Any] | None = None) -> None:
        self.current = current

    def __call__(self, call: Call) -> tuple[int, dict[str, str], Any]:
        if call.path.endswith("/skus"):
            return 200, {}, SKUS
        if call.method == "GET":
            if self.current is None:
                return 404, {}, {"error": {"code": "DeploymentNotFound", "message": "not found"}}
            return 200, {}, self.current
        if call.method == "PUT":
            body = call.body
            created = self.current is None
            self.current = {
                **resource(),
                "sku": body["sku"],
                "properties": {**body["properties"], "provisioningState": "Succeeded"},
            }
            return (201 if created else 200), {}, self.current
        if call.method == "PATCH":
            assert self.current is not None
            self.current = {**self.current, "sku": call.body["sku"]}
            return 200, {}, self.current
        if call.method == "DELETE":
            existed = self.current is not None
            self.current = None
            return (200 if existed else 204), {}, None
        raise AssertionError(call)


def service(arm: FakeArm) -> tuple[DeploymentService, list[Call]]:
    settings = load_settings({"AZURE_OPENAI_ACCOUNTS": json.dumps(ACCOUNTS), "DEFAULT_ACCOUNT": "main"})
    client, transport, _ = make_client(arm, tuning=ArmTuning())
    return DeploymentService(settings, client), transport.calls


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def mutations(calls: list[Call]) -> list[Call]:
    return [call for call in calls if call.method != "GET"]


# Validation: each bad input is a 4xx and nothing is sent to ARM.


@pytest.mark.parametrize(
    ("raw", "code", "target"),
    [
        (b"", "MissingRequestBody", None),
        (b"{not json", "InvalidJson", None),
        (b"[1, 2]", "InvalidJson", None),
        (body(), "MissingField", "model"),
        (body(model=FT, colour="blue"), "UnknownField", "colour"),
        (body(model="a model"), "InvalidField", "model"),
        (body(model="models/x"), "InvalidField", "model"),
        (body(model=FT, sku={"name": "Standard", "capacity": 0}), "InvalidField", "sku.capacity"),
        (body(model=FT, sku={"name": "Standard", "capacity": "5"}), "InvalidField", "sku.capacity"),
        (body(model=FT, sku={"name": "Standard", "capacity": True}), "InvalidField", "sku.capacity"),
        (body(model=FT, sku={"name": "Standard", "capacity": 1.5}), "InvalidField", "sku.capacity"),
        (body(model=FT, sku={"name": "Huge", "capacity": 1}), "InvalidField", "sku.name"),
        (body(model=FT, versionUpgradeOption="Sometimes"), "InvalidField", "versionUpgradeOption"),
        (body(model=FT, tags={"a": 1}), "InvalidField", "tags.a"),
        (body(model=FT, source="nowhere"), "InvalidSource", "source"),
    ],
)
def test_bad_put_bodies_are_rejected_before_arm(raw: bytes, code: str, target: str | None) -> None:
    svc, calls = service(FakeArm())
    with pytest.raises(ValidationError) as raised:
        svc.put(None, "d1", raw)
    assert raised.value.status == 400
    assert raised.value.code == code
    assert raised.value.target == target
    assert calls == []


@pytest.mark.parametrize("name", ["a", "-lead", "has space", "x" * 65, "semi;colon", "slash/y", ""])
def test_bad_deployment_names_are_rejected_before_arm(name: str) -> None:
    svc, calls = service(FakeArm())
    with pytest.raises(ValidationError) as raised:
        svc.put(None, name, body(model=FT))
    assert raised.value.code == "InvalidDeploymentName"
    assert calls == []


def test_oversized_body_is_413() -> None:
    svc, calls = service(FakeArm())
    with pytest.raises(PayloadTooLarge):
        svc.put(None, "d1", b"{" + b" " * 70_000 + b"}")
    assert calls == []


def test_unknown_account_alias() -> None:
    svc, calls = service(FakeArm())
    with pytest.raises(AccountNotFound) as raised:
        svc.list_deployments("nope")
    assert raised.value.status == 404 and "main" in raised.value.message
    assert calls == []


@pytest.mark.parametrize("wait", ["-1", "abc", "181", "1.5"])
def test_bad_wait_is_rejected(wait: str) -> None:
    svc, calls = service(FakeArm())
    with pytest.raises(ValidationError) as raised:
        svc.put(None, "d1", body(model=FT), wait=wait)
    assert raised.value.target == "wait"
    assert calls == []


# Body building and the outcomes of PUT.


def test_create_sends_defaults_with_sku_at_top_level() -> None:
    svc, calls = service(FakeArm())
    result = svc.put(
        None, "d1", body(model=FT, sku={"name": "globalstandard", "capacity": 3}, tags={"team": "x"}, source="east")
    )
    assert result.status == 201
    sent = mutations(calls)[0].body
    assert sent == {
        "sku": {"name": "GlobalStandard", "capacity": 3},
        "properties": {
            "model": {
                "format": "OpenAI",
                "name": FT,
                "version": "1",
                "source": f"/subscriptions/{SUB}/resourceGroups/rg2/providers/"
                "Microsoft.CognitiveServices/accounts/aoai-east",
            }
        },
        "tags": {"team": "x"},
    }
    assert result.resource is not None
    assert result.resource["model"]["source"] == "east"  # shown as the alias the caller used


def test_unchanged_put_answers_200_without_calling_arm_put() -> None:
    svc, calls = service(FakeArm(resource(capacity=5)))
    result = svc.put(None, "d1", body(model=FT, sku={"name": "Standard", "capacity": 5}))
    assert result.status == 200 and result.outcome == "unchanged"
    assert mutations(calls) == []


def test_put_omitting_fields_keeps_current_values() -> None:
    svc, calls = service(FakeArm(resource(capacity=5, raiPolicyName="Strict")))
    result = svc.put(None, "d1", body(model=FT))
    assert result.outcome == "unchanged"
    assert mutations(calls) == []


def test_put_changing_model_and_capacity_together_is_refused() -> None:
    svc, calls = service(FakeArm(resource(capacity=5)))
    with pytest.raises(ValidationError) as raised:
        svc.put(None, "d1", body(model=FT + "v2", sku={"name": "Standard", "capacity": 9}))
    assert raised.value.code == "ModelAndCapacityChange"
    assert "two steps" in raised.value.message
    assert mutations(calls) == []


def test_put_new_model_keeps_capacity_and_updates() -> None:
    svc, calls = service(FakeArm(resource(capacity=5)))
    result = svc.put(None, "d1", body(model=FT + "v2"))
    assert result.status == 200 and result.outcome == "updated"
    assert mutations(calls)[0].body["sku"] == {"name": "Standard", "capacity": 5}


def test_repeated_put_while_creating_is_202_without_new_put() -> None:
    svc, calls = service(FakeArm(resource(state="Creating")))
    result = svc.put(None, "d1", body(model=FT))
    assert result.status == 202 and result.location == "/deployments/d1?account=main"
    assert mutations(calls) == []


def test_arm_error_is_passed_through_with_its_status_and_code() -> None:
    def handler(call: Call) -> tuple[int, dict[str, str], Any]:
        if call.method == "GET":
            return 404, {}, {"error": {"code": "DeploymentNotFound"}}
        return 400, {}, {"error": {"code": "InsufficientQuota", "message": "This operation require 5 new capacity"}}

    settings = load_settings({"AZURE_OPENAI_ACCOUNTS": json.dumps(ACCOUNTS), "DEFAULT_ACCOUNT": "main"})
    client, _, _ = make_client(handler)
    with pytest.raises(BadRequest) as raised:  # the error type follows ARM's status; the code stays ARM's
        DeploymentService(settings, client).put(None, "d1", body(model=FT))
    assert (raised.value.status, raised.value.code) == (400, "InsufficientQuota")
    assert "new capacity" in raised.value.message


def test_missing_account_in_arm_says_which_setting_to_fix() -> None:
    settings = load_settings({"AZURE_OPENAI_ACCOUNTS": json.dumps(ACCOUNTS), "DEFAULT_ACCOUNT": "main"})
    client, _, _ = make_client(lambda _: (404, {}, {"error": {"code": "ResourceNotFound", "message": "gone"}}))
    with pytest.raises(NotFound) as raised:
        DeploymentService(settings, client).get(None, "d1")
    assert raised.value.status == 404 and raised.value.code == "ResourceNotFound"
    assert "AZURE_OPENAI_ACCOUNTS" in raised.value.message


# Scale.


def test_scale_checks_capacity_rules_before_patch() -> None:
    svc, calls = service(FakeArm(resource(sku="ProvisionedManaged", capacity=25)))
    with pytest.raises(ValidationError) as raised:
        svc.scale(None, "d1", body(capacity=40))
    assert raised.value.code == "InvalidCapacity"
    assert "steps of 25" in raised.value.message
    assert mutations(calls) == []


def test_scale_valid_capacity_patches_sku_only() -> None:
    svc, calls = service(FakeArm(resource(sku="ProvisionedManaged", capacity=25)))
    result = svc.scale(None, "d1", body(capacity=50))
    assert result.status == 200
    assert mutations(calls)[0].method == "PATCH"
    assert mutations(calls)[0].body == {"sku": {"name": "ProvisionedManaged", "capacity": 50}}


def test_scale_to_unavailable_sku() -> None:
    svc, calls = service(FakeArm(resource()))
    with pytest.raises(ValidationError) as raised:
        svc.scale(None, "d1", body(sku={"name": "DeveloperTier", "capacity": 50}))
    assert raised.value.code == "InvalidSku"
    assert mutations(calls) == []


def test_scale_to_current_capacity_is_unchanged() -> None:
    svc, calls = service(FakeArm(resource(capacity=7)))
    assert svc.scale(None, "d1", body(capacity=7)).outcome == "unchanged"
    assert [call.method for call in calls] == ["GET"]


def test_scale_of_missing_deployment_is_404() -> None:
    svc, _ = service(FakeArm())
    with pytest.raises(DeploymentNotFound):
        svc.scale(None, "d1", body(capacity=2))


@pytest.mark.parametrize("raw", [body(), body(capacity=2, sku={"capacity": 3}), body(replicas=2)])
def test_bad_scale_bodies(raw: bytes) -> None:
    svc, calls = service(FakeArm(resource()))
    with pytest.raises(ValidationError):
        svc.scale(None, "d1", raw)
    assert calls == []


@pytest.mark.parametrize(
    ("capacity", "rule", "ok"),
    [
        (100, {"minimum": 100, "maximum": 1000, "step": 100}, True),
        (150, {"minimum": 100, "maximum": 1000, "step": 100}, False),
        (50, {"minimum": 100, "maximum": 1000, "step": 100}, False),
        (1100, {"minimum": 100, "maximum": 1000, "step": 100}, False),
        (200, {"minimum": 100, "maximum": 1000, "step": 100, "allowedValues": [100, 200]}, True),
        (300, {"minimum": 100, "maximum": 1000, "step": 100, "allowedValues": [100, 200]}, False),
        (7, {}, True),
    ],
)
def test_capacity_rules(capacity: int, rule: dict[str, Any], ok: bool) -> None:
    assert (capacity_problem(capacity, rule) is None) == ok


# Delete.


def test_delete_missing_is_204_without_arm_delete() -> None:
    svc, calls = service(FakeArm())
    assert svc.delete(None, "d1").status == 204
    assert mutations(calls) == []


def test_delete_while_deleting_is_202_without_new_delete() -> None:
    svc, calls = service(FakeArm(resource(state="Deleting")))
    result = svc.delete(None, "d1")
    assert result.status == 202 and result.location
    assert mutations(calls) == []


def test_delete_existing() -> None:
    svc, calls = service(FakeArm(resource()))
    assert svc.delete(None, "d1").status == 204
    assert [call.method for call in mutations(calls)] == ["DELETE"]


# View.


def test_view_shape() -> None:
    svc, _ = service(
        FakeArm(resource(capacity=3, raiPolicyName="Microsoft.DefaultV2", rateLimits=[{"key": "token", "count": 3000}]))
    )
    view = svc.get("main", "d1")
    assert view == {
        "name": "d1",
        "account": "main",
        "model": {"format": "OpenAI", "name": FT, "version": "1"},
        "sku": {"name": "Standard", "capacity": 3},
        "provisioningState": "Succeeded",
        "raiPolicyName": "Microsoft.DefaultV2",
        "versionUpgradeOption": None,
        "tags": {},
        "expiresAt": None,
        "keepAlive": False,
        "rateLimits": [{"key": "token", "count": 3000}],
        "id": resource()["id"],
    }
