"""Simulator configuration: JSON in, validated frozen dataclasses out, and back to JSON.

Every key is optional; unknown keys are refused so that a typo in a test's config fails loudly
instead of silently falling back to a default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# ConfigError lives with the readers that raise it; re-exported because callers import it from here.
from .config_readers import ConfigError as ConfigError
from .config_readers import (
    read_integer,
    read_integers,
    read_list,
    read_number,
    read_object,
    read_optional_string,
    read_string,
    read_strings,
    refuse_unknown_keys,
)
from .fine_tuning_config import FineTuningJobSeed, parse_fine_tuning_jobs
from .foundry_config import FoundryProjectConfig, parse_foundry_projects
from .tenancy import CrossTenantApp, parse_cross_tenant_app

DEFAULT_TENANT_ID = "00000000-0000-4000-8000-00000000a001"
DEFAULT_PRINCIPAL_ID = "00000000-0000-4000-8000-00000000b001"
DEFAULT_API_VERSIONS = ("2023-05-01", "2024-10-01", "2025-06-01", "2025-09-01", "2025-12-01")
DEFAULT_DATA_PLANE_API_VERSIONS = ("2024-02-01", "2024-06-01", "2024-10-21", "2025-04-01-preview")
DEFAULT_SKU_NAME = "Standard"
DEFAULT_MODEL_VERSION = "1"

# (minimum, maximum, step, default) per deployment type, as ListSkus reports them.
_DEFAULT_SKU_TABLE: dict[str, tuple[int, int, int, int]] = {
    "Standard": (1, 300, 1, 1),
    "GlobalStandard": (1, 1000, 1, 1),
    "DataZoneStandard": (1, 1000, 1, 1),
    "DeveloperTier": (1, 250, 1, 50),
    "ProvisionedManaged": (25, 500, 25, 25),
    "GlobalProvisionedManaged": (15, 1000, 5, 15),
    "DataZoneProvisionedManaged": (15, 1000, 5, 15),
}

_TOP_LEVEL_KEYS = frozenset(
    {
        "foundryProjects",
        "tenantId",
        "principalId",
        "tokenLifetimeSeconds",
        "identityLatencyMs",
        "provisioningDelaySeconds",
        "retryAfterSeconds",
        "pageSize",
        "apiVersions",
        "skus",
        "accounts",
        "dataPlaneApiVersions",
        "dataPlaneLatencyMs",
        "streamChunkDelayMs",
        "crossTenantApp",
    }
)
_ACCOUNT_KEYS = frozenset(
    {
        "subscriptionId",
        "resourceGroup",
        "accountName",
        "location",
        "quota",
        "models",
        "failingModels",
        "deployments",
        "fineTuningJobs",
        "tenantId",
        "denyLinkedAccess",
    }
)
_SKU_RULE_KEYS = frozenset({"minimum", "maximum", "step", "default", "allowedValues"})
_SEED_KEYS = frozenset({"name", "model", "sku", "tags"})
_MODEL_KEYS = frozenset({"format", "name", "version", "source", "sourceAccount", "publisher"})
_SKU_KEYS = frozenset({"name", "capacity", "tier", "size", "family"})


@dataclass(frozen=True)
class SkuRule:
    """Capacity rule of one deployment SKU (ARM `CapacityConfig`)."""

    minimum: int
    maximum: int
    step: int
    default: int
    allowed_values: tuple[int, ...] = ()

    def allows(self, capacity: int) -> bool:
        in_range = self.minimum <= capacity <= self.maximum
        on_step = (capacity - self.minimum) % self.step == 0
        listed = not self.allowed_values or capacity in self.allowed_values
        return in_range and on_step and listed

    def describe(self) -> str:
        text = f"greater than or equal to {self.minimum} and no more than {self.maximum}"
        if self.step > 1:
            text += f", in increments of {self.step} starting from {self.minimum}"
        if self.allowed_values:
            text += ", and one of " + ", ".join(str(value) for value in self.allowed_values)
        return text

    def to_json(self) -> dict[str, Any]:
        return {
            "minimum": self.minimum,
            "maximum": self.maximum,
            "step": self.step,
            "default": self.default,
            "allowedValues": list(self.allowed_values),
        }


@dataclass(frozen=True)
class ModelSpec:
    """`properties.model` of a deployment."""

    format: str
    name: str
    version: str
    source: str | None = None
    source_account: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"format": self.format, "name": self.name, "version": self.version}
        if self.source is not None:
            body["source"] = self.source
        if self.source_account is not None:
            body["sourceAccount"] = self.source_account
        return body


@dataclass(frozen=True)
class SeedDeployment:
    """A deployment that exists (Succeeded) as soon as the config is loaded."""

    name: str
    model: ModelSpec
    sku_name: str
    capacity: int
    tags: Mapping[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "model": self.model.to_json(),
            "sku": {"name": self.sku_name, "capacity": self.capacity},
        }
        if self.tags is not None:
            body["tags"] = dict(self.tags)
        return body


AccountKey = tuple[str, str, str]


def account_key(subscription_id: str, resource_group: str, account_name: str) -> AccountKey:
    """ARM names are case-insensitive, so accounts are looked up by their lower-cased names."""
    return (subscription_id.lower(), resource_group.lower(), account_name.lower())


@dataclass(frozen=True)
class AccountConfig:
    subscription_id: str
    resource_group: str
    account_name: str
    location: str = "swedencentral"
    quota: int = 1000
    models: tuple[str, ...] | None = None
    failing_models: tuple[str, ...] = ()
    deployments: tuple[SeedDeployment, ...] = ()
    fine_tuning_jobs: tuple[FineTuningJobSeed, ...] = ()
    tenant_id: str | None = None  # None: the identity's own tenant
    deny_linked_access: bool = False

    @property
    def key(self) -> AccountKey:
        return account_key(self.subscription_id, self.resource_group, self.account_name)

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.CognitiveServices/accounts/{self.account_name}"
        )

    def holds_model(self, model_name: str) -> bool:
        if self.models is None:
            return True
        return model_name.lower() in {name.lower() for name in self.models}

    def fails_model(self, model_name: str) -> bool:
        return model_name.lower() in {name.lower() for name in self.failing_models}

    def to_json(self) -> dict[str, Any]:
        return {
            "subscriptionId": self.subscription_id,
            "resourceGroup": self.resource_group,
            "accountName": self.account_name,
            "location": self.location,
            "quota": self.quota,
            "models": None if self.models is None else list(self.models),
            "failingModels": list(self.failing_models),
            "deployments": [seed.to_json() for seed in self.deployments],
            "fineTuningJobs": [job.to_json() for job in self.fine_tuning_jobs],
            "tenantId": self.tenant_id,
            "denyLinkedAccess": self.deny_linked_access,
        }


def default_skus() -> dict[str, SkuRule]:
    return {
        name: SkuRule(minimum=low, maximum=high, step=step, default=default)
        for name, (low, high, step, default) in _DEFAULT_SKU_TABLE.items()
    }


@dataclass(frozen=True)
class SimulatorConfig:
    tenant_id: str = DEFAULT_TENANT_ID
    principal_id: str = DEFAULT_PRINCIPAL_ID
    token_lifetime_seconds: int = 3600
    identity_latency_ms: int = 0
    provisioning_delay_seconds: float = 1.0
    retry_after_seconds: int = 1
    page_size: int = 10
    api_versions: tuple[str, ...] = DEFAULT_API_VERSIONS
    skus: Mapping[str, SkuRule] | None = None
    accounts: tuple[AccountConfig, ...] = ()
    data_plane_api_versions: tuple[str, ...] = DEFAULT_DATA_PLANE_API_VERSIONS
    data_plane_latency_ms: int = 0
    stream_chunk_delay_ms: int = 0
    cross_tenant_app: CrossTenantApp | None = None
    foundry_projects: tuple[FoundryProjectConfig, ...] = ()  # Azure AI Foundry (foundry_config.py)

    def tenant_of(self, account: AccountConfig) -> str:
        return (account.tenant_id or self.tenant_id).lower()

    @property
    def sku_rules(self) -> Mapping[str, SkuRule]:
        return default_skus() if self.skus is None else self.skus

    def find_sku(self, name: str) -> tuple[str, SkuRule] | None:
        """SKU names match case-insensitively; the configured spelling is the canonical one."""
        for canonical, rule in self.sku_rules.items():
            if canonical.lower() == name.lower():
                return canonical, rule
        return None

    def find_account(self, subscription_id: str, resource_group: str, name: str) -> AccountConfig | None:
        wanted = account_key(subscription_id, resource_group, name)
        return next((account for account in self.accounts if account.key == wanted), None)

    def find_account_by_name(self, name: str) -> AccountConfig | None:
        """The data plane knows an account by its name alone (its endpoint); the first match wins."""
        return next((account for account in self.accounts if account.account_name.lower() == name.lower()), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "tenantId": self.tenant_id,
            "principalId": self.principal_id,
            "tokenLifetimeSeconds": self.token_lifetime_seconds,
            "identityLatencyMs": self.identity_latency_ms,
            "provisioningDelaySeconds": self.provisioning_delay_seconds,
            "retryAfterSeconds": self.retry_after_seconds,
            "pageSize": self.page_size,
            "apiVersions": list(self.api_versions),
            "skus": {name: rule.to_json() for name, rule in self.sku_rules.items()},
            "accounts": [account.to_json() for account in self.accounts],
            "dataPlaneApiVersions": list(self.data_plane_api_versions),
            "dataPlaneLatencyMs": self.data_plane_latency_ms,
            "streamChunkDelayMs": self.stream_chunk_delay_ms,
            "crossTenantApp": self.cross_tenant_app.to_json() if self.cross_tenant_app else None,
            "foundryProjects": [project.to_json() for project in self.foundry_projects],
        }


def parse_config(raw: object) -> SimulatorConfig:
    """Validate a JSON config (None means all defaults) into a SimulatorConfig."""
    if raw is None:
        return SimulatorConfig()
    top = read_object(raw, "config")
    refuse_unknown_keys(top, _TOP_LEVEL_KEYS, "config")
    skus = _parse_skus(top["skus"]) if top.get("skus") is not None else None
    known_skus = default_skus() if skus is None else skus
    accounts = tuple(
        _parse_account(item, f"accounts[{index}]", known_skus)
        for index, item in enumerate(read_list(top.get("accounts", []), "accounts"))
    )
    keys = [account.key for account in accounts]
    if len(set(keys)) != len(keys):
        raise ConfigError("accounts: the same subscriptionId/resourceGroup/accountName appears twice")
    api_versions = tuple(read_strings(top.get("apiVersions", list(DEFAULT_API_VERSIONS)), "apiVersions"))
    if not api_versions:
        raise ConfigError("apiVersions: must list at least one version")
    data_plane_versions = tuple(
        read_strings(top.get("dataPlaneApiVersions", list(DEFAULT_DATA_PLANE_API_VERSIONS)), "dataPlaneApiVersions")
    )
    if not data_plane_versions:
        raise ConfigError("dataPlaneApiVersions: must list at least one version")
    return SimulatorConfig(
        tenant_id=read_string(top, "tenantId", "config", DEFAULT_TENANT_ID),
        principal_id=read_string(top, "principalId", "config", DEFAULT_PRINCIPAL_ID),
        token_lifetime_seconds=read_integer(top, "tokenLifetimeSeconds", "config", 3600, minimum=0),
        identity_latency_ms=read_integer(top, "identityLatencyMs", "config", 0, minimum=0),
        provisioning_delay_seconds=read_number(top, "provisioningDelaySeconds", "config", 1.0),
        retry_after_seconds=read_integer(top, "retryAfterSeconds", "config", 1, minimum=0),
        page_size=read_integer(top, "pageSize", "config", 10, minimum=1),
        api_versions=api_versions,
        skus=skus,
        accounts=accounts,
        data_plane_api_versions=data_plane_versions,
        data_plane_latency_ms=read_integer(top, "dataPlaneLatencyMs", "config", 0, minimum=0),
        stream_chunk_delay_ms=read_integer(top, "streamChunkDelayMs", "config", 0, minimum=0),
        cross_tenant_app=parse_cross_tenant_app(top.get("crossTenantApp")),
        foundry_projects=parse_foundry_projects(top.get("foundryProjects", [])),
    )


def _parse_skus(raw: object) -> dict[str, SkuRule]:
    table = read_object(raw, "skus")
    if not table:
        raise ConfigError("skus: must define at least one SKU")
    rules: dict[str, SkuRule] = {}
    for name, value in table.items():
        where = f"skus.{name}"
        body = read_object(value, where)
        refuse_unknown_keys(body, _SKU_RULE_KEYS, where)
        minimum = read_integer(body, "minimum", where, 1, minimum=0)
        maximum = read_integer(body, "maximum", where, max(minimum, 1000), minimum=minimum)
        step = read_integer(body, "step", where, 1, minimum=1)
        default = read_integer(body, "default", where, minimum, minimum=0)
        allowed = tuple(read_integers(body.get("allowedValues", []), f"{where}.allowedValues"))
        rules[name] = SkuRule(minimum, maximum, step, default, allowed)
    return rules


def _parse_account(raw: object, where: str, skus: Mapping[str, SkuRule]) -> AccountConfig:
    body = read_object(raw, where)
    refuse_unknown_keys(body, _ACCOUNT_KEYS, where)
    for required in ("subscriptionId", "resourceGroup", "accountName"):
        if not isinstance(body.get(required), str) or not body[required]:
            raise ConfigError(f"{where}.{required}: required, a non-empty string")
    models_raw = body.get("models")
    seeds_raw = read_list(body.get("deployments", []), f"{where}.deployments")
    seeds = tuple(_parse_seed(item, f"{where}.deployments[{index}]", skus) for index, item in enumerate(seeds_raw))
    seed_names = [seed.name.lower() for seed in seeds]
    if len(set(seed_names)) != len(seed_names):
        raise ConfigError(f"{where}.deployments: deployment names must be unique (case-insensitively)")
    jobs = parse_fine_tuning_jobs(body.get("fineTuningJobs", []), f"{where}.fineTuningJobs")
    models = None if models_raw is None else _with_fine_tuned(read_strings(models_raw, f"{where}.models"), jobs)
    return AccountConfig(
        subscription_id=body["subscriptionId"],
        resource_group=body["resourceGroup"],
        account_name=body["accountName"],
        location=read_string(body, "location", where, "swedencentral"),
        quota=read_integer(body, "quota", where, 1000, minimum=0),
        models=models,
        failing_models=tuple(read_strings(body.get("failingModels", []), f"{where}.failingModels")),
        deployments=seeds,
        fine_tuning_jobs=jobs,
        tenant_id=read_optional_string(body, "tenantId", where),
        deny_linked_access=body.get("denyLinkedAccess") is True,
    )


def _with_fine_tuned(models: list[str], jobs: tuple[FineTuningJobSeed, ...]) -> tuple[str, ...]:
    """Succeeded jobs make their models deployable, so deploy-from-job works through ARM.

    Deduplicated case-insensitively, so a config read back and re-applied stays the same.
    """
    result = list(models)
    seen = {name.lower() for name in models}
    for name in (name for job in jobs for name in job.deployable_models()):
        if name.lower() not in seen:
            seen.add(name.lower())
            result.append(name)
    return tuple(result)


def _parse_seed(raw: object, where: str, skus: Mapping[str, SkuRule]) -> SeedDeployment:
    body = read_object(raw, where)
    refuse_unknown_keys(body, _SEED_KEYS, where)
    name = read_string(body, "name", where, "")
    if not name:
        raise ConfigError(f"{where}.name: required, a non-empty string")
    model_body = read_object(body.get("model"), f"{where}.model")
    refuse_unknown_keys(model_body, _MODEL_KEYS, f"{where}.model")
    model_format = read_string(model_body, "format", f"{where}.model", "")
    model_name = read_string(model_body, "name", f"{where}.model", "")
    if not model_format or not model_name:
        raise ConfigError(f"{where}.model: 'format' and 'name' are required")
    model = ModelSpec(
        format=model_format,
        name=model_name,
        version=read_string(model_body, "version", f"{where}.model", DEFAULT_MODEL_VERSION),
        source=read_optional_string(model_body, "source", f"{where}.model"),
        source_account=read_optional_string(model_body, "sourceAccount", f"{where}.model"),
    )
    sku_body = read_object(body.get("sku", {"name": DEFAULT_SKU_NAME}), f"{where}.sku")
    refuse_unknown_keys(sku_body, _SKU_KEYS, f"{where}.sku")
    sku_name = read_string(sku_body, "name", f"{where}.sku", DEFAULT_SKU_NAME)
    canonical = next((known for known in skus if known.lower() == sku_name.lower()), None)
    if canonical is None:
        raise ConfigError(f"{where}.sku.name: '{sku_name}' is not one of the configured skus {sorted(skus)}")
    capacity = read_integer(sku_body, "capacity", f"{where}.sku", skus[canonical].default, minimum=1)
    tags = body.get("tags")
    if tags is not None and not (isinstance(tags, dict) and all(isinstance(value, str) for value in tags.values())):
        raise ConfigError(f"{where}.tags: must be an object of strings")
    return SeedDeployment(name=name, model=model, sku_name=canonical, capacity=capacity, tags=tags)
