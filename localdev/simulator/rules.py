"""Request bodies and the validation rules the Cognitive Services RP applies to deployment writes.

Messages copy the ones users reported from real ARM (see the reference, section 4) so a client's
error handling can be tested against realistic text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .config import DEFAULT_MODEL_VERSION, DEFAULT_SKU_NAME, AccountConfig, ModelSpec, SimulatorConfig, SkuRule
from .errors import ArmError
from .state import AccountState

SCALE_SETTINGS_DEPRECATED = (
    "The scale settings of account deployment is deprecated since API version '2023-05-01', please use 'sku' instead."
)
VERSION_UPGRADE_OPTIONS = ("OnceNewDefaultVersionAvailable", "OnceCurrentVersionExpired", "NoAutoUpgrade")
_ACCOUNT_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.CognitiveServices/accounts/(?P<account>[^/]+)/?$",
    re.IGNORECASE,
)
_PATCH_KEYS = frozenset({"sku", "tags"})


@dataclass(frozen=True)
class PutRequest:
    sku_name: str
    capacity: int | None  # None: the SKU's default capacity
    tags: dict[str, str] | None
    model: ModelSpec
    rai_policy_name: str | None
    version_upgrade_option: str | None


@dataclass(frozen=True)
class PatchRequest:
    sku_name: str | None
    capacity: int | None
    tags: dict[str, str] | None
    has_tags: bool


def invalid_content(message: str) -> ArmError:
    return ArmError(
        400, "InvalidRequestContent", f"The request content was invalid and could not be deserialized: {message}"
    )


def invalid_property(message: str, target: str | None = None) -> ArmError:
    return ArmError(400, "InvalidResourceProperties", message, target)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError) as error:
        raise invalid_content(f"the body is not valid JSON ({error}).") from None
    if not isinstance(body, dict):
        raise invalid_content("the body must be a JSON object.")
    return body


def _sku(body: dict[str, Any]) -> tuple[str | None, int | None]:
    sku = body.get("sku")
    if sku is None:
        return None, None
    if not isinstance(sku, dict):
        raise invalid_content("'sku' must be an object.")
    name = sku.get("name")
    capacity = sku.get("capacity")
    if name is not None and not isinstance(name, str):
        raise invalid_content("'sku.name' must be a string.")
    if capacity is not None and (not isinstance(capacity, int) or isinstance(capacity, bool)):
        raise invalid_content("'sku.capacity' must be an integer.")
    return name, capacity


def _tags(body: dict[str, Any]) -> dict[str, str] | None:
    tags = body.get("tags")
    if tags is None:
        return None
    if not isinstance(tags, dict) or not all(isinstance(value, str) for value in tags.values()):
        raise invalid_content("'tags' must be an object of strings.")
    return dict(tags)


def _optional_text(container: dict[str, Any], key: str, where: str) -> str | None:
    value = container.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid_content(f"'{where}.{key}' must be a string.")
    return value


def parse_put(raw: bytes) -> PutRequest:
    body = _json_object(raw)
    sku_name, capacity = _sku(body)
    if body.get("sku") is None:
        capacity = 1  # without a sku ARM deploys Standard with capacity 1
    tags = _tags(body)
    properties = body.get("properties", {})
    if not isinstance(properties, dict):
        raise invalid_content("'properties' must be an object.")
    if properties.get("scaleSettings") is not None:
        raise invalid_property(SCALE_SETTINGS_DEPRECATED, "properties.scaleSettings")
    model = properties.get("model")
    if model is None:
        raise invalid_property("The model of account deployment is required.", "properties.model")
    if not isinstance(model, dict):
        raise invalid_content("'properties.model' must be an object.")
    model_format = _optional_text(model, "format", "properties.model")
    model_name = _optional_text(model, "name", "properties.model")
    if not model_format:
        raise invalid_property("The model format of account deployment is required.", "properties.model.format")
    if not model_name:
        raise invalid_property("The model name of account deployment is required.", "properties.model.name")
    upgrade = _optional_text(properties, "versionUpgradeOption", "properties")
    if upgrade is not None and upgrade not in VERSION_UPGRADE_OPTIONS:
        raise invalid_property(
            f"The version upgrade option '{upgrade}' is not supported; "
            f"use one of {', '.join(VERSION_UPGRADE_OPTIONS)}.",
            "properties.versionUpgradeOption",
        )
    return PutRequest(
        sku_name=sku_name or DEFAULT_SKU_NAME,
        capacity=capacity,
        tags=tags,
        model=ModelSpec(
            format=model_format,
            name=model_name,
            # Real ARM assigns the default version when none is sent; "1" is what fine-tuned models use.
            version=_optional_text(model, "version", "properties.model") or DEFAULT_MODEL_VERSION,
            source=_optional_text(model, "source", "properties.model"),
            source_account=_optional_text(model, "sourceAccount", "properties.model"),
        ),
        rai_policy_name=_optional_text(properties, "raiPolicyName", "properties"),
        version_upgrade_option=upgrade,
    )


def parse_patch(raw: bytes) -> PatchRequest:
    body = _json_object(raw)
    unknown = sorted(set(body) - _PATCH_KEYS)
    if unknown:
        raise invalid_content(f"PATCH accepts only 'sku' and 'tags'; unexpected {unknown}.")
    sku_name, capacity = _sku(body)
    return PatchRequest(sku_name=sku_name, capacity=capacity, tags=_tags(body), has_tags="tags" in body)


def resolve_sku(config: SimulatorConfig, sku_name: str, model: ModelSpec) -> tuple[str, SkuRule]:
    found = config.find_sku(sku_name)
    if found is None:
        raise invalid_property(
            f"The specified SKU '{sku_name}' of account deployment is not supported by the model "
            f"'{model.name}' version: '{model.version}'.",
            "sku.name",
        )
    return found


def check_capacity(sku_name: str, rule: SkuRule, capacity: int) -> None:
    if not rule.allows(capacity):
        raise ArmError(
            400,
            "InvalidCapacity",
            f"The specified capacity '{capacity}' of account deployment for SKU '{sku_name}' should be "
            f"{rule.describe()}.",
            "sku.capacity",
        )


def parse_account_id(arm_id: str) -> tuple[str, str, str] | None:
    match = _ACCOUNT_ID.match(arm_id)
    return (match["sub"], match["rg"], match["account"]) if match else None


def check_model(config: SimulatorConfig, target: AccountConfig, model: ModelSpec) -> None:
    """The model must be deployable in the target account, or held by the account named as its source."""
    holders: list[AccountConfig] = []
    for field_name, source in (("source", model.source), ("sourceAccount", model.source_account)):
        if source is None:
            continue
        parsed = parse_account_id(source)
        holder = config.find_account(*parsed) if parsed else None
        if holder is None:
            raise invalid_property(
                f"The {field_name} '{source}' of the model is not a Cognitive Services account that can be accessed.",
                f"properties.model.{field_name}",
            )
        holders.append(holder)
    if not all(holder.holds_model(model.name) for holder in holders or [target]):
        raise ArmError(
            400,
            "DeploymentModelNotSupported",
            f"The model 'Format: {model.format}, Name: {model.name}, Version: {model.version}, "
            f"Source: {model.source or model.source_account or ''}' of account deployment is not supported.",
            "properties.model",
        )


def check_quota(account: AccountState, required: int, model_name: str) -> None:
    limit = account.config.quota
    usage = account.used_capacity()
    available = max(limit - usage, 0)
    if required > available:
        quota_name = f"Tokens Per Minute (thousands) - {model_name}"
        raise ArmError(
            400,
            "InsufficientQuota",
            f"This operation require {required} new capacity in quota {quota_name}, which is bigger than the "
            f"current available capacity {available}. The current quota usage is {usage} and the quota limit "
            f"is {limit} for quota {quota_name}.",
        )


def check_no_running_operation(account: AccountState, now: float) -> None:
    if account.is_busy(now):
        raise ArmError(
            409,
            "RequestConflict",
            f"Another operation is being performed on the parent resource '{account.config.arm_id}'. "
            "Please try again later.",
        )
