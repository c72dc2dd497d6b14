"""GitOps path for model deployments (infra/models): one at a time, on an existing account, valid examples."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.deployment_requests import DEPLOYMENT_NAME, SKU_NAMES

from .bicep_tools import INFRA, Json, bicepparam_files, body, decorators, parse_bicepparam, rel, resource, template

ACCOUNT_ID = re.compile(
    r"^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[-\w._()]{1,90}"
    r"/providers/Microsoft\.CognitiveServices/accounts/[A-Za-z0-9][A-Za-z0-9_.-]{1,63}$"
)
DEPLOYMENT_KEYS = {"name", "model", "sku", "source", "raiPolicyName"}


@pytest.fixture(scope="module")
def models() -> dict[str, Json]:
    return template("models/main.bicep")


def test_scope_and_existing_account(models: dict[str, Json]) -> None:
    assert models["globals"]["scope"]["value"] == "resourceGroup"
    account = resource(models, "Microsoft.CognitiveServices/accounts")
    assert account["existing"] is True
    assert set(body(account)) == {"name"}, "nothing about the account itself may be re-applied"


def test_deployments_are_written_one_at_a_time(models: dict[str, Json]) -> None:
    deployments = resource(models, "Microsoft.CognitiveServices/accounts/deployments")
    # ARM answers 409 RequestConflict to concurrent deployment writes on one account.
    assert decorators(deployments).get("batchSize") == 1
    loop = deployments["config"]["loop_type"]
    assert loop["type"] == "array" and loop["detail"]["array_name"] == "deployments"
    config = body(deployments)
    assert config["parent"] == "account"
    # sku is top-level on a deployment; under properties ARM silently uses the default SKU.
    assert "sku" in config and "sku" not in config["properties"]
    assert set(config["sku"]) == {"name", "capacity"}


def _models_param_files() -> list[Path]:
    return [p for p in bicepparam_files() if parse_bicepparam(p).template == (INFRA / "models/main.bicep").resolve()]


@pytest.mark.parametrize("path", _models_param_files(), ids=rel)
def test_example_deployments_follow_the_service_rules(path: Path) -> None:
    values = parse_bicepparam(path).values
    assert isinstance(values["accountName"], str) and values["accountName"]
    deployments = values["deployments"]
    assert isinstance(deployments, list) and deployments
    names = [d["name"] for d in deployments]
    assert len(names) == len(set(names)), f"duplicate deployment names: {names}"
    canonical = {name.lower() for name in SKU_NAMES}
    for deployment in deployments:
        where = f"{rel(path)}: {deployment.get('name')}"
        assert set(deployment) <= DEPLOYMENT_KEYS, f"{where}: unknown keys {set(deployment) - DEPLOYMENT_KEYS}"
        assert DEPLOYMENT_NAME.match(deployment["name"]), f"{where}: invalid deployment name"
        model = deployment["model"]
        assert set(model) == {"format", "name", "version"}, where
        assert all(isinstance(v, str) and v and " " not in v for v in model.values()), where
        sku = deployment["sku"]
        assert set(sku) == {"name", "capacity"}, where
        assert sku["name"].lower() in canonical, f"{where}: SKU {sku['name']} is not one of {SKU_NAMES}"
        assert isinstance(sku["capacity"], int) and sku["capacity"] >= 1, where
        if "source" in deployment:
            assert ACCOUNT_ID.match(deployment["source"]), f"{where}: source must be an account's ARM id"
