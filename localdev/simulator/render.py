"""JSON bodies of deployments, operations and SKU lists, as ARM returns them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .config import AccountConfig, SkuRule
from .state import Deployment, Operation

DEPLOYMENT_TYPE = "Microsoft.CognitiveServices/accounts/deployments"


def timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def deployment_id(account: AccountConfig, deployment_name: str) -> str:
    return f"{account.arm_id}/deployments/{deployment_name}"


def deployment_json(account: AccountConfig, deployment: Deployment, now: float) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "model": deployment.model.to_json(),
        "provisioningState": deployment.provisioning_state(now),
        "raiPolicyName": deployment.rai_policy_name,
    }
    if deployment.version_upgrade_option is not None:
        properties["versionUpgradeOption"] = deployment.version_upgrade_option
    properties["currentCapacity"] = deployment.capacity
    properties["capabilities"] = {"chatCompletion": "true"}
    properties["rateLimits"] = [
        {"key": "request", "renewalPeriod": 10, "count": deployment.capacity},
        {"key": "token", "renewalPeriod": 60, "count": deployment.capacity * 1000},
    ]
    body: dict[str, Any] = {
        "id": deployment_id(account, deployment.name),
        "name": deployment.name,
        "type": DEPLOYMENT_TYPE,
        "sku": {"name": deployment.sku_name, "capacity": deployment.capacity},
    }
    if deployment.tags is not None:
        body["tags"] = dict(deployment.tags)
    body["etag"] = deployment.etag
    body["systemData"] = {
        "createdBy": deployment.created_by,
        "createdByType": "Application",
        "createdAt": timestamp(deployment.created_at),
        "lastModifiedBy": deployment.modified_by,
        "lastModifiedByType": "Application",
        "lastModifiedAt": timestamp(deployment.modified_at),
    }
    body["properties"] = properties
    return body


def operation_json(operation: Operation, now: float) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": operation.path("operationStatuses"),
        "name": operation.op_id,
        "status": operation.status(now),
        "startTime": timestamp(operation.started_at),
    }
    if operation.is_done(now):
        body["endTime"] = timestamp(operation.ended_at)
        if operation.failure is not None:
            body["error"] = {"code": operation.failure.code, "message": operation.failure.message}
    return body


def sku_list_json(rules: Mapping[str, SkuRule]) -> dict[str, Any]:
    return {
        "value": [
            {
                "resourceType": DEPLOYMENT_TYPE,
                "sku": {"name": name, "capacity": rule.default},
                "capacity": rule.to_json(),
            }
            for name, rule in rules.items()
        ]
    }
