"""App settings, read once from the environment (local.settings.json locally, app settings in Azure).

A missing or malformed setting never crashes the host at import: `get_settings()` raises a
`ConfigurationError` naming the setting, the routes that need it answer 500 with that message, and the
problem is logged once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .errors import AccountNotFound, ConfigurationError

log = logging.getLogger(__name__)

DEFAULT_ARM_ENDPOINT = "https://management.azure.com"
DEFAULT_ARM_API_VERSION = "2024-10-01"
DEFAULT_AZURE_OPENAI_API_VERSION = "2024-10-21"
DEFAULT_ARM_SCOPE = "https://management.azure.com/.default"
DEFAULT_AZURE_OPENAI_SCOPE = "https://cognitiveservices.azure.com/.default"
# The Azure Functions front end answers 502 after 230 s; a waiting request must finish well before.
MAX_WAIT_CEILING_SECONDS = 180

# Every app setting the code reads (tests/unit/test_settings.py keeps this list honest). infra/ sets the
# primary ones; the tuning ones keep their defaults unless an operator sets them.
PRIMARY_SETTINGS = (
    "AZURE_OPENAI_ACCOUNTS",
    "DEFAULT_ACCOUNT",
    "ARM_ENDPOINT",
    "ARM_SCOPE",
    "ARM_API_VERSION",
    "AZURE_OPENAI_API_VERSION",
    "AZURE_OPENAI_SCOPE",
    "IMAGE_ANALYSIS_ACCOUNT",
    "IMAGE_ANALYSIS_DEPLOYMENT",
    "AUTH_MODE",
    "AUDIT_TABLE",
)
# Set by the Functions platform (or its storage binding conventions) and read by the code as well.
PLATFORM_SETTINGS = (
    "WEBSITE_AUTH_ENABLED",
    "WEBSITE_INSTANCE_ID",
    "AzureWebJobsStorage",
    "AzureWebJobsStorage__tableServiceUri",
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
)
# The names the original image-analysis sample used; still honoured.
LEGACY_SETTINGS = ("GPT4V_ENDPOINT", "GPT4V_DEPLOYMENT")
TUNING_SETTINGS = (
    "MAX_WAIT_SECONDS",
    "ARM_TIMEOUT_SECONDS",
    "ARM_CONNECT_TIMEOUT_SECONDS",
    "ARM_RETRY_TOTAL",
    "ARM_RETRY_BACKOFF_SECONDS",
    "ARM_RETRY_BACKOFF_MAX_SECONDS",
    "ARM_RETRY_BUDGET_SECONDS",
    "ARM_CONFLICT_RETRY_SECONDS",
    "ARM_POLL_INTERVAL_SECONDS",
    "ARM_POOL_SIZE",
    "BLOCKING_THREADS",
    "INFERENCE_TIMEOUT_SECONDS",
    "INFERENCE_MAX_BODY_BYTES",
    "INFERENCE_RETRY_MAX_WAIT_MS",
    "INFERENCE_POOL_SIZE",
)
APP_SETTINGS = PRIMARY_SETTINGS + LEGACY_SETTINGS + TUNING_SETTINGS + PLATFORM_SETTINGS

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_ACCOUNT_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{1,63}$")
_RESOURCE_GROUP = re.compile(r"^[-\w._()]{1,90}$")
_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_ACCOUNT_KEYS = {"subscriptionId", "resourceGroup", "accountName", "endpoint", "inferenceDeployments"}


@dataclass(frozen=True)
class Account:
    """One Azure OpenAI account the service may act on, known by a short alias."""

    alias: str
    subscription_id: str
    resource_group: str
    account_name: str
    endpoint: str | None = None
    inference_deployments: tuple[str, ...] = ()

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.CognitiveServices/accounts/{self.account_name}"
        )


@dataclass(frozen=True)
class ArmTuning:
    """Bounds of the ARM client: every wait it makes is finite and configurable."""

    timeout_seconds: float = 30.0
    connect_timeout_seconds: float = 5.0
    retry_total: int = 4
    retry_backoff_seconds: float = 0.8
    retry_backoff_max_seconds: float = 20.0
    retry_budget_seconds: float = 60.0
    conflict_retry_seconds: float = 45.0
    poll_interval_seconds: float = 10.0
    max_wait_seconds: int = 150
    pool_size: int = 16


@dataclass(frozen=True)
class InferenceTuning:
    """Bounds of the inference proxy."""

    timeout_seconds: float = 120.0
    max_body_bytes: int = 32 * 1024 * 1024
    retry_max_wait_ms: int = 1000
    pool_size: int = 100


@dataclass(frozen=True)
class Settings:
    accounts: Mapping[str, Account]
    default_alias: str
    arm_endpoint: str = DEFAULT_ARM_ENDPOINT
    arm_scope: str = DEFAULT_ARM_SCOPE
    arm_api_version: str = DEFAULT_ARM_API_VERSION
    azure_openai_api_version: str = DEFAULT_AZURE_OPENAI_API_VERSION
    azure_openai_scope: str = DEFAULT_AZURE_OPENAI_SCOPE
    arm: ArmTuning = field(default_factory=ArmTuning)
    inference: InferenceTuning = field(default_factory=InferenceTuning)
    image_account: str | None = None
    image_deployment: str | None = None

    def account(self, alias: str | None) -> Account:
        """The account for `?account=<alias>`, or the default one when no alias is given."""
        if alias is None or alias == "":
            return self.accounts[self.default_alias]
        try:
            return self.accounts[alias]
        except KeyError:
            known = ", ".join(sorted(self.accounts))
            raise AccountNotFound(
                f"No account with alias '{alias}' is configured. Use one of: {known}.", target="account"
            ) from None


def load_settings(env: Mapping[str, str]) -> Settings:
    """Parse settings from an environment mapping; raise ConfigurationError naming the bad setting."""
    accounts = _parse_accounts(env.get("AZURE_OPENAI_ACCOUNTS"))
    default_alias = env.get("DEFAULT_ACCOUNT", "").strip()
    if not default_alias:
        if len(accounts) > 1:
            raise ConfigurationError(
                "DEFAULT_ACCOUNT is not set and AZURE_OPENAI_ACCOUNTS names several accounts "
                f"({', '.join(sorted(accounts))}). Set DEFAULT_ACCOUNT to one of those aliases.",
                target="DEFAULT_ACCOUNT",
            )
        default_alias = next(iter(accounts))
    elif default_alias not in accounts:
        raise ConfigurationError(
            f"DEFAULT_ACCOUNT is '{default_alias}', which is not an alias in AZURE_OPENAI_ACCOUNTS "
            f"({', '.join(sorted(accounts))}).",
            target="DEFAULT_ACCOUNT",
        )
    arm_endpoint = _url(env, "ARM_ENDPOINT", DEFAULT_ARM_ENDPOINT).rstrip("/")
    defaults = ArmTuning()
    tuning = ArmTuning(
        timeout_seconds=_number(env, "ARM_TIMEOUT_SECONDS", defaults.timeout_seconds, 1, 120),
        connect_timeout_seconds=_number(env, "ARM_CONNECT_TIMEOUT_SECONDS", defaults.connect_timeout_seconds, 0.1, 60),
        retry_total=int(_number(env, "ARM_RETRY_TOTAL", defaults.retry_total, 0, 10)),
        retry_backoff_seconds=_number(env, "ARM_RETRY_BACKOFF_SECONDS", defaults.retry_backoff_seconds, 0, 30),
        retry_backoff_max_seconds=_number(
            env, "ARM_RETRY_BACKOFF_MAX_SECONDS", defaults.retry_backoff_max_seconds, 0, 120
        ),
        retry_budget_seconds=_number(env, "ARM_RETRY_BUDGET_SECONDS", defaults.retry_budget_seconds, 0, 120),
        conflict_retry_seconds=_number(env, "ARM_CONFLICT_RETRY_SECONDS", defaults.conflict_retry_seconds, 0, 120),
        poll_interval_seconds=_number(env, "ARM_POLL_INTERVAL_SECONDS", defaults.poll_interval_seconds, 0.05, 60),
        max_wait_seconds=int(_number(env, "MAX_WAIT_SECONDS", defaults.max_wait_seconds, 0, MAX_WAIT_CEILING_SECONDS)),
        pool_size=int(_number(env, "ARM_POOL_SIZE", defaults.pool_size, 1, 256)),
    )
    return Settings(
        accounts=accounts,
        default_alias=default_alias,
        arm_endpoint=arm_endpoint,
        # A sovereign cloud has its own ARM audience (e.g. https://management.usgovcloudapi.net/.default).
        arm_scope=_url(env, "ARM_SCOPE", DEFAULT_ARM_SCOPE),
        arm_api_version=_api_version(env, "ARM_API_VERSION", DEFAULT_ARM_API_VERSION),
        azure_openai_api_version=_api_version(env, "AZURE_OPENAI_API_VERSION", DEFAULT_AZURE_OPENAI_API_VERSION),
        azure_openai_scope=_url(env, "AZURE_OPENAI_SCOPE", DEFAULT_AZURE_OPENAI_SCOPE),
        arm=tuning,
        inference=InferenceTuning(
            timeout_seconds=_number(env, "INFERENCE_TIMEOUT_SECONDS", 120, 1, 225),
            max_body_bytes=int(_number(env, "INFERENCE_MAX_BODY_BYTES", 32 * 1024 * 1024, 1024, 100 * 1024 * 1024)),
            retry_max_wait_ms=int(_number(env, "INFERENCE_RETRY_MAX_WAIT_MS", 1000, 0, 10_000)),
            pool_size=int(_number(env, "INFERENCE_POOL_SIZE", 100, 1, 1000)),
        ),
        image_account=_image_account(env, accounts),
        image_deployment=(env.get("IMAGE_ANALYSIS_DEPLOYMENT") or env.get("GPT4V_DEPLOYMENT") or "").strip() or None,
    )


_cache_lock = threading.Lock()
_cached: Settings | ConfigurationError | None = None


def get_settings() -> Settings:
    """The process-wide settings, parsed on first use; a bad setting is logged once and raised each call."""
    global _cached
    if _cached is None:
        with _cache_lock:
            if _cached is None:
                try:
                    _cached = load_settings(os.environ)
                except ConfigurationError as error:
                    log.error("Configuration error: %s", error.message)
                    _cached = error
    if isinstance(_cached, ConfigurationError):
        raise _cached
    return _cached


def reset_settings_cache() -> None:
    """Forget the parsed settings (tests and a settings reload)."""
    global _cached
    with _cache_lock:
        _cached = None


def _parse_accounts(raw: str | None) -> dict[str, Account]:
    name = "AZURE_OPENAI_ACCOUNTS"
    example = (
        '{"main": {"subscriptionId": "<guid>", "resourceGroup": "<rg>", "accountName": "<name>", '
        '"endpoint": "https://<name>.openai.azure.com/"}}'
    )
    if raw is None or not raw.strip():
        raise ConfigurationError(
            f"{name} is not set. Set it to a JSON object of alias -> account, for example {example}.",
            target=name,
        )
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ConfigurationError(f"{name} is not valid JSON ({error.msg} at {error.pos}).", target=name) from None
    if not isinstance(data, dict) or not data:
        raise ConfigurationError(f"{name} must be a non-empty JSON object, for example {example}.", target=name)
    accounts: dict[str, Account] = {}
    for alias, spec in data.items():
        where = f"{name}['{alias}']"
        if not _ALIAS.fullmatch(alias):
            raise ConfigurationError(
                f"{where}: an alias is 1-63 letters, digits, '-' or '_', starting with a letter or digit.",
                target=name,
            )
        if not isinstance(spec, dict):
            raise ConfigurationError(f"{where} must be an object like {example}.", target=name)
        unknown = set(spec) - _ACCOUNT_KEYS
        if unknown:
            raise ConfigurationError(
                f"{where} has unknown keys {sorted(unknown)}; allowed: {sorted(_ACCOUNT_KEYS)}.", target=name
            )
        subscription = _required_str(spec, "subscriptionId", where)
        if not _GUID.fullmatch(subscription):
            raise ConfigurationError(f"{where}.subscriptionId must be a GUID.", target=name)
        group = _required_str(spec, "resourceGroup", where)
        if not _RESOURCE_GROUP.fullmatch(group):
            raise ConfigurationError(f"{where}.resourceGroup is not a valid resource group name.", target=name)
        account_name = _required_str(spec, "accountName", where)
        if not _ACCOUNT_NAME.fullmatch(account_name):
            raise ConfigurationError(f"{where}.accountName must be 2-64 letters, digits, '_', '.' or '-'.", target=name)
        endpoint = spec.get("endpoint")
        if endpoint is not None and not (isinstance(endpoint, str) and _is_http_url(endpoint)):
            raise ConfigurationError(
                f"{where}.endpoint must be the account's data-plane URL, e.g. "
                f"https://{account_name}.openai.azure.com/.",
                target=name,
            )
        allowed = spec.get("inferenceDeployments", [])
        if not (isinstance(allowed, list) and all(isinstance(item, str) and item for item in allowed)):
            raise ConfigurationError(
                f'{where}.inferenceDeployments must be a list of deployment names, or ["*"].', target=name
            )
        accounts[alias] = Account(
            alias=alias,
            subscription_id=subscription,
            resource_group=group,
            account_name=account_name,
            endpoint=endpoint,
            inference_deployments=tuple(allowed),
        )
    return accounts


def _image_account(env: Mapping[str, str], accounts: Mapping[str, Account]) -> str | None:
    """The account image analysis uses: IMAGE_ANALYSIS_ACCOUNT, else the one GPT4V_ENDPOINT names."""
    alias = env.get("IMAGE_ANALYSIS_ACCOUNT", "").strip()
    if alias:
        if alias not in accounts:
            raise ConfigurationError(
                f"IMAGE_ANALYSIS_ACCOUNT is '{alias}', not an alias in AZURE_OPENAI_ACCOUNTS.",
                target="IMAGE_ANALYSIS_ACCOUNT",
            )
        return alias
    legacy = env.get("GPT4V_ENDPOINT", "").strip().rstrip("/").lower()
    if not legacy:
        return None
    for candidate in accounts.values():
        if candidate.endpoint and candidate.endpoint.rstrip("/").lower() == legacy:
            return candidate.alias
    raise ConfigurationError(
        f"GPT4V_ENDPOINT is {legacy}, but no account in AZURE_OPENAI_ACCOUNTS has that endpoint. Add the account, "
        "or set IMAGE_ANALYSIS_ACCOUNT to an alias.",
        target="GPT4V_ENDPOINT",
    )


def _required_str(spec: Mapping[str, object], key: str, where: str) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{where}.{key} is required (a non-empty string).", target="AZURE_OPENAI_ACCOUNTS")
    return value.strip()


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("https", "http") and bool(parts.netloc)


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    if not _is_http_url(value):
        raise ConfigurationError(f"{name} must be an http(s) URL, e.g. {default}; got '{value}'.", target=name)
    return value


def _api_version(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", value):
        raise ConfigurationError(
            f"{name} must look like {default} (YYYY-MM-DD, optionally -preview); got '{value}'.", target=name
        )
    return value


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number; got '{raw}'.", target=name) from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name} must be between {low:g} and {high:g}; got {raw}.", target=name)
    return value
