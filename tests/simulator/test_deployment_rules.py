"""Validation the resource provider applies: bodies, SKUs, capacity, models, sources and quota."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from localdev.simulator.control_client import SimulatorControl

from .conftest import (
    BASE_CONFIG,
    FT_MODEL,
    SOURCE_ACCOUNT,
    SOURCE_ONLY_MODEL,
    SOURCE_RG,
    SOURCE_SUB,
    Arm,
    account_id,
    deployment_body,
)


def error_of(response: requests.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def test_quota_counts_every_deployment(arm: Arm) -> None:
    arm.create_ready("big", capacity=60)
    error = error_of(arm.put("second", deployment_body(capacity=50)))
    assert error["code"] == "InsufficientQuota"
    assert error["message"] == (
        f"This operation require 50 new capacity in quota Tokens Per Minute (thousands) - {FT_MODEL}, which is "
        "bigger than the current available capacity 40. The current quota usage is 60 and the quota limit is 100 "
        f"for quota Tokens Per Minute (thousands) - {FT_MODEL}."
    )
    assert arm.put("second", deployment_body(capacity=40)).status_code == 201


def test_unchanged_re_put_fails_when_quota_is_full_but_patch_does_not(arm: Arm) -> None:
    arm.create_ready("full", capacity=100)
    error = error_of(arm.put("full", deployment_body(capacity=100)))
    assert error["code"] == "InsufficientQuota"
    assert "require 100 new capacity" in error["message"]

    assert error_of(arm.patch("full", {"sku": {"name": "Standard", "capacity": 101}}))["code"] == ("InsufficientQuota")
    assert arm.patch("full", {"sku": {"name": "Standard", "capacity": 100}}).status_code == 202


def test_patch_only_needs_quota_for_the_increase(arm: Arm) -> None:
    arm.create_ready("a", capacity=50)
    arm.create_ready("b", capacity=40)
    assert error_of(arm.patch("b", {"sku": {"name": "Standard", "capacity": 51}}))["code"] == "InsufficientQuota"
    assert arm.patch("b", {"sku": {"name": "Standard", "capacity": 50}}).status_code == 202


@pytest.mark.parametrize(
    ("sku", "capacity"),
    [("Standard", 0), ("Standard", 301), ("ProvisionedManaged", 30), ("GlobalProvisionedManaged", 17)],
)
def test_capacity_outside_the_sku_rule_is_invalid(arm: Arm, sku: str, capacity: int) -> None:
    error = error_of(arm.put("cap", deployment_body(sku=sku, capacity=capacity)))
    assert error["code"] == "InvalidCapacity"
    assert "greater than or equal to" in error["message"]


@pytest.mark.parametrize(("sku", "capacity"), [("ProvisionedManaged", 50), ("GlobalProvisionedManaged", 20)])
def test_capacity_on_the_sku_step_is_accepted(arm: Arm, sku: str, capacity: int) -> None:
    assert arm.put("cap", deployment_body(sku=sku, capacity=capacity)).status_code == 201


def test_allowed_values_from_a_config_override(arm: Arm, control: SimulatorControl) -> None:
    control.patch_config(
        {"skus": {"ProvisionedManaged": {"minimum": 100, "maximum": 1000, "step": 100, "allowedValues": [100, 200]}}}
    )
    assert error_of(arm.put("ptu", deployment_body(sku="ProvisionedManaged", capacity=300)))["code"] == (
        "InvalidCapacity"
    )
    assert error_of(arm.put("std", deployment_body(sku="Standard")))["code"] == "InvalidResourceProperties"
    skus = arm.call("GET", f"{arm.deployments()}/x/skus")
    assert skus.status_code == 404  # ListSkus needs an existing deployment


def test_sku_names_match_case_insensitively_and_unknown_ones_are_refused(arm: Arm) -> None:
    created = arm.put("sku", deployment_body(sku="globalstandard", capacity=2))
    assert created.json()["sku"] == {"name": "GlobalStandard", "capacity": 2}
    error = error_of(arm.put("other", deployment_body(sku="Premium")))
    assert error["code"] == "InvalidResourceProperties"
    assert error["message"] == (
        f"The specified SKU 'Premium' of account deployment is not supported by the model '{FT_MODEL}' version: '1'."
    )


def test_missing_sku_defaults_to_standard_1(arm: Arm) -> None:
    body = deployment_body()
    del body["sku"]
    assert arm.put("nosku", body).json()["sku"] == {"name": "Standard", "capacity": 1}


def test_model_and_capacity_cannot_change_together(arm: Arm) -> None:
    arm.create_ready("ft", capacity=2)
    error = error_of(arm.put("ft", deployment_body(model="gpt-4o-mini", capacity=3)))
    assert error["code"] == "InvalidResourceProperties"
    assert error["message"] == "Cannot change capacity and model at the same time for deployment."
    assert arm.put("ft", deployment_body(model="gpt-4o-mini", capacity=2)).status_code == 200


def test_unknown_model_is_not_supported(arm: Arm) -> None:
    error = error_of(arm.put("x", deployment_body(model=SOURCE_ONLY_MODEL)))
    assert error["code"] == "DeploymentModelNotSupported"
    assert error["message"] == (
        f"The model 'Format: OpenAI, Name: {SOURCE_ONLY_MODEL}, Version: 1, Source: ' of account deployment is "
        "not supported."
    )


def test_model_from_a_source_account(arm: Arm) -> None:
    source = account_id(SOURCE_SUB, SOURCE_RG, SOURCE_ACCOUNT)
    created = arm.put("cross", deployment_body(model=SOURCE_ONLY_MODEL, source=source))
    assert created.status_code == 201, created.text
    assert created.json()["properties"]["model"]["source"] == source

    not_held = error_of(arm.put("cross2", deployment_body(model=FT_MODEL, source=source)))
    assert not_held["code"] == "DeploymentModelNotSupported"
    assert f"Source: {source}'" in not_held["message"]


def test_source_must_be_a_known_account(arm: Arm) -> None:
    unknown = account_id(SOURCE_SUB, SOURCE_RG, "elsewhere")
    error = error_of(arm.put("cross", deployment_body(model=SOURCE_ONLY_MODEL, source=unknown)))
    assert error["code"] == "InvalidResourceProperties"
    assert unknown in error["message"]


def test_accounts_without_a_model_list_accept_any_model(arm: Arm, control: SimulatorControl) -> None:
    accounts = [dict(BASE_CONFIG["accounts"][0], models=None)]
    control.patch_config({"accounts": accounts})
    assert arm.put("any", deployment_body(model="whatever-model")).status_code == 201


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"not json", "InvalidRequestContent"),
        (b"[1, 2]", "InvalidRequestContent"),
        (b'{"sku": "Standard", "properties": {}}', "InvalidRequestContent"),
        (b'{"sku": {"name": "Standard", "capacity": 1}}', "InvalidResourceProperties"),
        (b'{"properties": {"model": {"format": "OpenAI"}}}', "InvalidResourceProperties"),
    ],
)
def test_malformed_put_bodies(arm: Arm, raw: bytes, code: str) -> None:
    response = arm.session.put(
        arm.url(f"{arm.deployments()}/bad"),
        params={"api-version": "2024-10-01"},
        data=raw,
        headers={"Authorization": f"Bearer {arm.token}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert error_of(response)["code"] == code


def test_scale_settings_are_deprecated(arm: Arm) -> None:
    body = deployment_body()
    body["properties"]["scaleSettings"] = {"scaleType": "Standard", "capacity": 1}
    error = error_of(arm.put("old", body))
    assert error["code"] == "InvalidResourceProperties"
    assert error["message"] == (
        "The scale settings of account deployment is deprecated since API version '2023-05-01', "
        "please use 'sku' instead."
    )


def test_patch_accepts_only_sku_and_tags(arm: Arm) -> None:
    arm.create_ready("p")
    error = error_of(arm.patch("p", {"properties": {"raiPolicyName": "x"}}))
    assert error["code"] == "InvalidRequestContent"


def test_put_keeps_optional_properties(arm: Arm) -> None:
    body = deployment_body()
    body["properties"].update(raiPolicyName="Custom", versionUpgradeOption="NoAutoUpgrade")
    body["tags"] = {"a": "b"}
    created = arm.put("props", body).json()
    assert created["properties"]["raiPolicyName"] == "Custom"
    assert created["properties"]["versionUpgradeOption"] == "NoAutoUpgrade"
    assert created["tags"] == {"a": "b"}


def test_list_skus(arm: Arm) -> None:
    arm.create_ready("s")
    skus = arm.call("GET", f"{arm.deployments()}/s/skus")
    assert skus.status_code == 200
    by_name = {item["sku"]["name"]: item for item in skus.json()["value"]}
    assert set(by_name) == {
        "Standard",
        "GlobalStandard",
        "DataZoneStandard",
        "DeveloperTier",
        "ProvisionedManaged",
        "GlobalProvisionedManaged",
        "DataZoneProvisionedManaged",
    }
    assert by_name["ProvisionedManaged"]["capacity"] == {
        "minimum": 25,
        "maximum": 500,
        "step": 25,
        "default": 25,
        "allowedValues": [],
    }
    assert by_name["DeveloperTier"]["sku"] == {"name": "DeveloperTier", "capacity": 50}
    assert by_name["Standard"]["resourceType"] == "Microsoft.CognitiveServices/accounts/deployments"
