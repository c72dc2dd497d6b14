"""The shared gateway's settings: per-caller limits, the store that holds their counters, the usage ledger and
failover groups.

`INFERENCE_LIMITS` and `INFERENCE_GROUPS` are JSON, checked when the settings load (a bad rule or member is a
ConfigurationError naming the variable and the entry); the parsed rules and groups are built once.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Literal

from pydantic import field_validator
from pydantic_settings import BaseSettings

from .accounts import setting_error
from .failover import Group, parse_groups
from .limit_rules import LimitRule, RuleError, parse_rules
from .setting_types import TableName, json_setting, setting, tuning

StoreDownMode = Literal["local", "closed"]


class GatewaySettings(BaseSettings):
    """Settings of the limiter, its Redis store, the usage ledger and failover groups."""

    inference_limits: str = setting(
        "INFERENCE_LIMITS",
        "",
        "service",
        description='a JSON list of rules, e.g. [{"caller": "*", "deployment": "*", "tokensPerMinute": 10000}]',
    )
    inference_groups: str = setting(
        "INFERENCE_GROUPS",
        "",
        "service",
        description='a JSON object of group -> members, e.g. {"chat": [{"account": "main", "deployment": "d"}]}',
    )
    redis_host: str | None = setting(
        "REDIS_HOST",
        None,
        "service",
        pattern=r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$",
        description="host:port, e.g. my-cache.swedencentral.redis.azure.net:10000",
    )
    limits_when_store_down: StoreDownMode = setting(
        "LIMITS_WHEN_STORE_DOWN", "local", "service", description="local or closed"
    )
    usage_table: TableName = setting("USAGE_TABLE", "usage", "service")
    # Local stand-ins only: in Azure the client authenticates with Microsoft Entra ID over TLS.
    redis_password: str | None = setting("REDIS_PASSWORD", None, "platform", repr=False)
    redis_ssl: bool = setting("REDIS_SSL", True, "platform")
    redis_timeout_seconds: float = tuning("REDIS_TIMEOUT_SECONDS", 1.0, 0.05, 10)
    usage_flush_seconds: float = tuning("USAGE_FLUSH_SECONDS", 2.0, 0.05, 10)

    @field_validator("inference_limits")
    @classmethod
    def _check_limits(cls, value: str) -> str:
        _decoded(value, parse_rules)
        return value

    @field_validator("inference_groups")
    @classmethod
    def _check_groups(cls, value: str) -> str:
        _decoded(value, parse_groups)
        return value

    @field_validator("limits_when_store_down", mode="before")
    @classmethod
    def _mode_any_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("redis_ssl", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> Any:
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered not in ("true", "false", "1", "0"):
                raise setting_error("must be true or false")
            return lowered in ("true", "1")
        return value

    @cached_property
    def limit_rules(self) -> tuple[LimitRule, ...]:
        return tuple(_decoded(self.inference_limits, parse_rules) or ())

    @cached_property
    def groups(self) -> dict[str, Group]:
        return dict(_decoded(self.inference_groups, parse_groups) or {})


def _decoded(value: str, parse: Any) -> Any:
    if not value:
        return None
    decoded = json_setting(value)
    try:
        return parse(decoded)
    except RuleError as error:
        raise setting_error("{problem}", problem=str(error)) from None
