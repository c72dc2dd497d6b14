"""App settings (local.settings.json locally, app settings in Azure), validated as one object.

Every setting the code reads is a field of `Settings`, its alias the environment variable's exact name.
`load_settings(env)` builds it from the mapping it is given (never from `os.environ` behind the caller's back);
blank values count as unset, and a bad value is a `ConfigurationError` naming the variable and saying what it
must be. A bad setting never crashes the host at import: the routes that need settings answer 500 with that
message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import cached_property
from typing import Any, Literal

from pydantic import AliasChoices, ValidationInfo, field_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from . import accounts as account_rules
from .accounts import ACCOUNTS_EXAMPLE, Account, Alias, Guid
from .errors import AccountNotFound
from .setting_types import (
    ARM_DEFAULTS,
    INFERENCE_DEFAULTS,
    ApiVersion,
    ArmTuning,
    InferenceTuning,
    SettingGroup,
    StorageSettings,
    TableName,
    Url,
    json_setting,
    legacy,
    setting,
    tuning,
)
from .settings_dashboard import DashboardSettings
from .settings_errors import configuration_error
from .settings_foundry import FoundrySettings
from .settings_gateway import GatewaySettings
from .settings_queue import QueueSettings

__all__ = [
    "Account",
    "ArmTuning",
    "InferenceTuning",
    "Settings",
    "StorageSettings",
    "load_settings",
    "setting_names",
]

log = logging.getLogger(__name__)

DEFAULT_ARM_ENDPOINT = "https://management.azure.com"
DEFAULT_ARM_API_VERSION = "2024-10-01"
DEFAULT_AZURE_OPENAI_API_VERSION = "2024-10-21"
DEFAULT_ARM_SCOPE = "https://management.azure.com/.default"
DEFAULT_AZURE_OPENAI_SCOPE = "https://cognitiveservices.azure.com/.default"
# The Azure Functions front end answers 502 after 230 s; a waiting request must finish well before.
MAX_WAIT_CEILING_SECONDS = 180

AuthMode = Literal["entra", "keys", "none"]

_ARM, _INFERENCE = ARM_DEFAULTS, INFERENCE_DEFAULTS


class Settings(FoundrySettings, DashboardSettings, GatewaySettings, QueueSettings, BaseSettings):
    """Every app setting the code reads. Field aliases are the exact (case-sensitive) variable names."""

    model_config = SettingsConfigDict(
        case_sensitive=True, frozen=True, str_strip_whitespace=True, validate_default=True
    )

    accounts: dict[Alias, Account] = setting(
        "AZURE_OPENAI_ACCOUNTS",
        ...,
        "service",
        min_length=1,
        description=f"a non-empty JSON object of alias -> account, for example {ACCOUNTS_EXAMPLE}",
    )
    default_alias: str = setting("DEFAULT_ACCOUNT", "", "service")
    arm_endpoint: Url = setting("ARM_ENDPOINT", DEFAULT_ARM_ENDPOINT, "service")
    # A sovereign cloud has its own ARM audience (e.g. https://management.usgovcloudapi.net/.default).
    arm_scope: Url = setting("ARM_SCOPE", DEFAULT_ARM_SCOPE, "service")
    arm_api_version: ApiVersion = setting("ARM_API_VERSION", DEFAULT_ARM_API_VERSION, "service")
    azure_openai_api_version: ApiVersion = setting(
        "AZURE_OPENAI_API_VERSION", DEFAULT_AZURE_OPENAI_API_VERSION, "service"
    )
    azure_openai_scope: Url = setting("AZURE_OPENAI_SCOPE", DEFAULT_AZURE_OPENAI_SCOPE, "service")
    image_account: str | None = legacy("IMAGE_ANALYSIS_ACCOUNT", "GPT4V_ENDPOINT")
    image_deployment: str | None = legacy("IMAGE_ANALYSIS_DEPLOYMENT", "GPT4V_DEPLOYMENT")
    auth_mode: AuthMode = setting("AUTH_MODE", "entra", "service", description="entra, keys or none")
    audit_table: TableName = setting("AUDIT_TABLE", "audit", "service")
    # Cross-tenant accounts: the tenant of the Function App's identity, and the multi-tenant app that trusts it.
    home_tenant_id: Guid | None = setting("HOME_TENANT_ID", None, "service")
    cross_tenant_app_client_id: Guid | None = setting("CROSS_TENANT_APP_CLIENT_ID", None, "service")

    max_wait_seconds: int = tuning("MAX_WAIT_SECONDS", _ARM.max_wait_seconds, 0, MAX_WAIT_CEILING_SECONDS)
    arm_timeout_seconds: float = tuning("ARM_TIMEOUT_SECONDS", _ARM.timeout_seconds, 1, 120)
    arm_connect_timeout_seconds: float = tuning("ARM_CONNECT_TIMEOUT_SECONDS", _ARM.connect_timeout_seconds, 0.1, 60)
    arm_retry_total: int = tuning("ARM_RETRY_TOTAL", _ARM.retry_total, 0, 10)
    arm_retry_backoff_seconds: float = tuning("ARM_RETRY_BACKOFF_SECONDS", _ARM.retry_backoff_seconds, 0, 30)
    arm_retry_backoff_max_seconds: float = tuning(
        "ARM_RETRY_BACKOFF_MAX_SECONDS", _ARM.retry_backoff_max_seconds, 0, 120
    )
    arm_retry_budget_seconds: float = tuning("ARM_RETRY_BUDGET_SECONDS", _ARM.retry_budget_seconds, 0, 120)
    arm_conflict_retry_seconds: float = tuning("ARM_CONFLICT_RETRY_SECONDS", _ARM.conflict_retry_seconds, 0, 120)
    arm_poll_interval_seconds: float = tuning("ARM_POLL_INTERVAL_SECONDS", _ARM.poll_interval_seconds, 0.05, 60)
    arm_pool_size: int = tuning("ARM_POOL_SIZE", _ARM.pool_size, 1, 256)
    blocking_threads: int = tuning("BLOCKING_THREADS", 32, 1, 256)
    inference_timeout_seconds: float = tuning("INFERENCE_TIMEOUT_SECONDS", _INFERENCE.timeout_seconds, 1, 225)
    inference_max_body_bytes: int = tuning(
        "INFERENCE_MAX_BODY_BYTES", _INFERENCE.max_body_bytes, 1024, 100 * 1024 * 1024
    )
    inference_retry_max_wait_ms: int = tuning("INFERENCE_RETRY_MAX_WAIT_MS", _INFERENCE.retry_max_wait_ms, 0, 10_000)
    inference_pool_size: int = tuning("INFERENCE_POOL_SIZE", _INFERENCE.pool_size, 1, 1000)

    # Set by the platform: App Service Authentication on ("True"), and the instance (only in Azure).
    website_auth_enabled: bool = setting("WEBSITE_AUTH_ENABLED", False, "platform")
    website_instance_id: str | None = setting("WEBSITE_INSTANCE_ID", None, "platform")
    # azure-identity's own: the user-assigned identity, and the Entra host (sovereign clouds, a local simulator).
    azure_client_id: str | None = setting("AZURE_CLIENT_ID", None, "platform")
    azure_authority_host: str | None = setting("AZURE_AUTHORITY_HOST", None, "platform")
    storage_connection_string: str | None = setting("AzureWebJobsStorage", None, "platform", repr=False)
    storage_table_service_uri: Url | None = setting("AzureWebJobsStorage__tableServiceUri", None, "platform")
    storage_account_name: str | None = setting("AzureWebJobsStorage__accountName", None, "platform")
    storage_credential: str | None = setting("AzureWebJobsStorage__credential", None, "platform")
    storage_client_id: str | None = setting("AzureWebJobsStorage__clientId", None, "platform")
    appinsights_connection_string: str | None = setting(
        "APPLICATIONINSIGHTS_CONNECTION_STRING", None, "platform", repr=False
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what load_settings passes in: no os.environ, .env file or secrets directory.
        return (init_settings,)

    @field_validator("accounts", mode="before")
    @classmethod
    def _decode_accounts(cls, value: Any) -> Any:
        return json_setting(value)

    @field_validator("accounts")
    @classmethod
    def _name_accounts(cls, value: dict[str, Account]) -> dict[str, Account]:
        return account_rules.named(value)

    @field_validator("default_alias")
    @classmethod
    def _default_alias(cls, value: str, info: ValidationInfo) -> str:
        known = info.data.get("accounts")
        return account_rules.default_alias(known, value) if known else value

    @field_validator("image_account")
    @classmethod
    def _image_account(cls, value: str | None, info: ValidationInfo) -> str | None:
        known = info.data.get("accounts")
        return account_rules.image_account(known, value) if known else value

    @field_validator("arm_endpoint")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("auth_mode", mode="before")
    @classmethod
    def _mode_any_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("website_auth_enabled", mode="before")
    @classmethod
    def _platform_flag(cls, value: Any) -> Any:
        # The platform writes "True" or "False"; anything else leaves authentication off (fail closed).
        return value.strip().lower() == "true" if isinstance(value, str) else value

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

    @cached_property
    def arm(self) -> ArmTuning:
        return ArmTuning(
            timeout_seconds=self.arm_timeout_seconds,
            connect_timeout_seconds=self.arm_connect_timeout_seconds,
            retry_total=self.arm_retry_total,
            retry_backoff_seconds=self.arm_retry_backoff_seconds,
            retry_backoff_max_seconds=self.arm_retry_backoff_max_seconds,
            retry_budget_seconds=self.arm_retry_budget_seconds,
            conflict_retry_seconds=self.arm_conflict_retry_seconds,
            poll_interval_seconds=self.arm_poll_interval_seconds,
            max_wait_seconds=self.max_wait_seconds,
            pool_size=self.arm_pool_size,
        )

    @cached_property
    def inference(self) -> InferenceTuning:
        return InferenceTuning(
            timeout_seconds=self.inference_timeout_seconds,
            max_body_bytes=self.inference_max_body_bytes,
            retry_max_wait_ms=self.inference_retry_max_wait_ms,
            pool_size=self.inference_pool_size,
        )

    @cached_property
    def storage(self) -> StorageSettings:
        return StorageSettings(
            connection_string=self.storage_connection_string,
            table_service_uri=self.storage_table_service_uri,
            account_name=self.storage_account_name,
            credential=self.storage_credential,
            client_id=self.storage_client_id,
        )


def _names_of(field_name: str) -> list[str]:
    """A field's variable names, the current name first."""
    info = Settings.model_fields[field_name]
    if isinstance(info.validation_alias, AliasChoices):
        return [str(choice) for choice in info.validation_alias.choices]
    return [info.alias or field_name]


def setting_names(group: SettingGroup | None = None) -> set[str]:
    """The names of the app settings the code reads; with `group`, only those of that group."""
    names: set[str] = set()
    for field_name, info in Settings.model_fields.items():
        extra = info.json_schema_extra
        field_group = extra.get("group") if isinstance(extra, dict) else None
        current, *legacy = _names_of(field_name)
        if group is None or group == field_group:
            names.add(current)
        if group in (None, "legacy"):
            names.update(legacy)
    return names


def load_settings(env: Mapping[str, str]) -> Settings:
    """The settings in `env` (blank values are unset); a bad one is a ConfigurationError naming it."""
    given: dict[str, Any] = {}
    for field_name in Settings.model_fields:
        for name in _names_of(field_name):
            value = env.get(name, "").strip()
            if value:
                given[name] = value
                break  # the current name wins over a legacy one
    try:
        return Settings(**given)
    except PydanticValidationError as error:
        raise configuration_error(error, Settings) from None
