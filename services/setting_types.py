"""The building blocks of the settings model: field helpers, value types and the tuning bundles.

A capability with settings of its own declares them in a small `BaseSettings` mixin made with these helpers;
`services/settings.py` combines the mixins into the one `Settings` model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AliasChoices, Field

from .accounts import is_http_url, setting_error


def json_setting(value: Any) -> Any:
    """A setting given as JSON text, decoded (anything else as given); bad JSON names where it breaks."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise setting_error("is not valid JSON ({reason} at {pos})", reason=error.msg, pos=error.pos) from None


# Who sets a setting: infra/ ("service"), an operator overriding a default ("tuning", infra's
# appTuningSettings), or the Functions platform and its storage conventions ("platform"). The older names
# the original image-analysis sample used are "legacy" aliases of service settings.
SettingGroup = Literal["service", "tuning", "platform", "legacy"]


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
class StorageSettings:
    """Where the audit table lives, found as the Functions host finds its own storage (AzureWebJobsStorage)."""

    connection_string: str | None = field(default=None, repr=False)  # may hold an account key
    table_service_uri: str | None = None
    account_name: str | None = None
    credential: str | None = None
    client_id: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.connection_string or self.table_service_uri or self.account_name)


ARM_DEFAULTS = ArmTuning()
INFERENCE_DEFAULTS = InferenceTuning()


def _url(value: str) -> str:
    if not is_http_url(value):
        raise setting_error("must be an http(s) URL")
    return value


def _api_version(value: str) -> str:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", value):
        raise setting_error("must be an API version: YYYY-MM-DD, optionally -preview")
    return value


Url = Annotated[str, AfterValidator(_url)]
ApiVersion = Annotated[str, AfterValidator(_api_version)]
TableName = Annotated[
    str,
    Field(pattern=r"^[A-Za-z][A-Za-z0-9]{2,62}$", description="a table name: 3-63 letters or digits, first a letter"),
]


def setting(name: str, default: Any, group: SettingGroup, **constraints: Any) -> Any:
    return Field(default, alias=name, json_schema_extra={"group": group}, **constraints)


def tuning(name: str, default: float, low: float, high: float) -> Any:
    return setting(name, default, "tuning", ge=low, le=high)


def legacy(name: str, legacy: str, group: SettingGroup = "service") -> Any:
    """A setting also honoured under the name the original image-analysis sample used (`name` wins)."""
    return Field(None, validation_alias=AliasChoices(name, legacy), json_schema_extra={"group": group})
