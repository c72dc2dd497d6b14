"""The service's Deployment view of an ARM deployment resource, and what its errors say about one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .deployment_state import CurrentDeployment
from .errors import DeploymentNotFound
from .lifecycle_tags import expires_at, keep_alive
from .settings import Account


def deployment_view(resource: dict[str, Any], account: Account, accounts: Mapping[str, Account]) -> dict[str, Any]:
    """What GET /deployments/{name} answers; `model.source` as the alias of the configured account it names."""
    current = CurrentDeployment(resource)
    model: dict[str, Any] = {
        "format": current.model_format,
        "name": current.model_name,
        "version": current.model_version,
    }
    if current.model_source:
        model["source"] = alias_for(str(current.model_source), accounts)
    view: dict[str, Any] = {
        "name": resource.get("name"),
        "account": account.alias,
        "model": model,
        "sku": {"name": current.sku_name, "capacity": current.capacity},
        "provisioningState": current.state,
        "raiPolicyName": current.rai_policy_name,
        "versionUpgradeOption": current.version_upgrade_option,
        "tags": current.tags,
        "expiresAt": expires_at(current.tags),
        "keepAlive": keep_alive(current.tags),
    }
    if current.rate_limits:
        view["rateLimits"] = current.rate_limits
    view["id"] = resource.get("id")
    return view


def alias_for(arm_id: str, accounts: Mapping[str, Account]) -> str:
    """The alias of the configured account with this ARM id, or the id itself when none has it."""
    for alias, account in accounts.items():
        if account.arm_id.lower() == arm_id.lower():
            return alias
    return arm_id


def not_found(account: Account, name: str) -> DeploymentNotFound:
    return DeploymentNotFound(
        f"Deployment '{name}' does not exist in account '{account.alias}'. GET /api/deployments lists the "
        "deployments; a fine-tuned deployment left idle for 15 days is removed by Azure.",
        target="name",
    )
