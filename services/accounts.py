"""The Azure OpenAI accounts the service acts on (`AZURE_OPENAI_ACCOUNTS`), and how an alias picks one.

`AZURE_OPENAI_ACCOUNTS` is a JSON object of alias -> account. An alias is what callers pass as `?account=`;
`DEFAULT_ACCOUNT` names the one used without it, and image analysis has its own default account.
Errors here are `PydanticCustomError`s whose message is what the value must be; `services.settings` turns them
into a `ConfigurationError` naming the setting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Protocol, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

ACCOUNTS_EXAMPLE = (
    '{"main": {"subscriptionId": "<guid>", "resourceGroup": "<rg>", "accountName": "<name>", '
    '"endpoint": "https://<name>.openai.azure.com/"}}'
)
GUID_EXAMPLE = "00000000-0000-0000-0000-000000000000"


def setting_error(expected: str, **context: Any) -> PydanticCustomError:
    """A validation error whose message completes "<setting> ..." (e.g. "must be a GUID")."""
    return PydanticCustomError("setting", expected, context)


def is_http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("https", "http") and bool(parts.netloc)


def _matching(pattern: str, expected: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise setting_error(expected)
        return value

    return AfterValidator(check)


Guid = Annotated[
    str, _matching(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", f"must be a GUID, e.g. {GUID_EXAMPLE}")
]
Alias = Annotated[
    str,
    _matching(
        r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}",
        "is not a valid alias: an alias is 1-63 letters, digits, '-' or '_', starting with a letter or digit",
    ),
]
_Required = Field(min_length=1, description="a non-empty string")


class Account(BaseModel):
    """One Azure OpenAI account the service may act on, known by a short alias."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    subscription_id: Annotated[Guid, _Required] = Field(alias="subscriptionId")
    resource_group: Annotated[
        str, _Required, _matching(r"[-\w._()]{1,90}", "is not a valid resource group name (1-90 characters)")
    ] = Field(alias="resourceGroup")
    account_name: Annotated[
        str, _Required, _matching(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{1,63}", "must be 2-64 letters, digits, '_', '.' or '-'")
    ] = Field(alias="accountName")
    endpoint: str | None = Field(default=None, description="the account's data-plane URL")
    inference_deployments: tuple[Annotated[str, Field(min_length=1)], ...] = Field(
        default=(), alias="inferenceDeployments", description='a list of deployment names, or ["*"]'
    )
    # The tenant of the account's subscription, for accounts outside the Function App's own tenant.
    tenant_id: Guid | None = Field(default=None, alias="tenantId")

    _alias: str = PrivateAttr(default="")

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not is_http_url(value):
            name = info.data.get("account_name", "<name>")
            raise setting_error(
                "must be the account's data-plane URL, e.g. https://{name}.openai.azure.com/", name=name
            )
        return value

    @property
    def alias(self) -> str:
        return self._alias

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.CognitiveServices/accounts/{self.account_name}"
        )


def account_keys() -> list[str]:
    """The keys an account object in AZURE_OPENAI_ACCOUNTS may have."""
    return [field.alias or name for name, field in Account.model_fields.items()]


class _Aliased(Protocol):
    _alias: str


_A = TypeVar("_A", bound=_Aliased)


def named(items: Mapping[str, _A]) -> dict[str, _A]:
    """The configured accounts (or Foundry projects), each knowing its alias."""
    for alias, item in items.items():
        item._alias = alias
    return dict(items)


def default_alias(accounts: Mapping[str, Account], chosen: str) -> str:
    """DEFAULT_ACCOUNT: required when there are several accounts, and always one of the aliases."""
    known = ", ".join(sorted(accounts))
    if not chosen:
        if len(accounts) > 1:
            raise setting_error(
                "is not set and AZURE_OPENAI_ACCOUNTS names several accounts ({known}). "
                "Set DEFAULT_ACCOUNT to one of those aliases",
                known=known,
            )
        return next(iter(accounts))
    if chosen not in accounts:
        raise setting_error("must be an alias in AZURE_OPENAI_ACCOUNTS ({known})", known=known)
    return chosen


def image_account(accounts: Mapping[str, Account], chosen: str | None) -> str | None:
    """The account image analysis uses: an alias, or (as GPT4V_ENDPOINT gives it) the account's endpoint URL."""
    if not chosen:
        return None
    if is_http_url(chosen):
        wanted = chosen.rstrip("/").lower()
        for alias, account in accounts.items():
            if account.endpoint and account.endpoint.rstrip("/").lower() == wanted:
                return alias
        raise setting_error(
            "must be the endpoint of an account in AZURE_OPENAI_ACCOUNTS (add the account, or set "
            "IMAGE_ANALYSIS_ACCOUNT to an alias instead)"
        )
    if chosen not in accounts:
        raise setting_error("must be an alias in AZURE_OPENAI_ACCOUNTS ({known})", known=", ".join(sorted(accounts)))
    return chosen
