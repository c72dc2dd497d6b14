"""Which tenant an account is reached in, the auxiliary header, Entra's refusals as errors, token-free logs."""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.core.credentials import AccessTokenInfo
from azure.core.exceptions import ClientAuthenticationError

from services.errors import ConfigurationError
from services.settings import Settings, load_settings
from services.tenants import (
    TenantTokens,
    auxiliary_header,
    exchange_failed,
    exchange_scope,
    instance_discovery_off,
    redact_identity_logs,
    source_link,
    tenant_of,
)

HOME = "aaaaaaaa-0000-4000-8000-000000000001"
OTHER = "bbbbbbbb-0000-4000-8000-000000000002"
APP = "cccccccc-0000-4000-8000-000000000003"
SUB = "11111111-1111-1111-1111-111111111111"


def account(name: str, tenant: str | None = None) -> dict[str, str]:
    entry = {"subscriptionId": SUB, "resourceGroup": "rg", "accountName": name}
    return {**entry, "tenantId": tenant} if tenant else entry


def settings(**extra: str) -> Settings:
    accounts = {"main": account("a-main"), "home": account("a-home", HOME.upper()), "prod": account("a-prod", OTHER)}
    return load_settings({"AZURE_OPENAI_ACCOUNTS": json.dumps(accounts), "DEFAULT_ACCOUNT": "main", **extra})


def test_accounts_without_a_tenant_or_with_the_home_one_use_the_identity_itself() -> None:
    configured = settings(HOME_TENANT_ID=HOME)
    assert tenant_of(configured, configured.account("main")) is None
    assert tenant_of(configured, configured.account("home")) is None  # GUIDs compare case-insensitively
    assert tenant_of(configured, configured.account("prod")) == OTHER


def test_a_tenant_id_without_home_tenant_id_names_the_setting() -> None:
    configured = settings()
    assert tenant_of(configured, configured.account("main")) is None  # same-tenant accounts keep working
    with pytest.raises(ConfigurationError) as raised:
        tenant_of(configured, configured.account("prod"))
    assert raised.value.target == "HOME_TENANT_ID" and raised.value.status == 500


def test_the_auxiliary_header_is_one_bearer_per_tenant_and_at_most_three() -> None:
    assert auxiliary_header(["t1"]) == "Bearer t1"
    assert auxiliary_header(["t1", "t2", "t3"]) == "Bearer t1, Bearer t2, Bearer t3"
    for wrong in ([], ["a", "b", "c", "d"]):
        with pytest.raises(ValueError):
            auxiliary_header(wrong)


@pytest.mark.parametrize(
    ("host", "off", "audience"),
    [
        (None, False, "api://AzureADTokenExchange"),
        ("https://login.microsoftonline.us", False, "api://AzureADTokenExchangeUSGov"),
        ("login.chinacloudapi.cn", False, "api://AzureADTokenExchangeChina"),
        ("https://127.0.0.1:8443", True, "api://AzureADTokenExchange"),
    ],
)
def test_authority_decides_discovery_and_the_exchange_audience(host: str | None, off: bool, audience: str) -> None:
    configured = settings(**({"AZURE_AUTHORITY_HOST": host} if host else {}))
    assert instance_discovery_off(configured) is off
    assert exchange_scope(configured) == audience + "/.default"


def test_a_source_in_another_tenant_is_a_link_and_a_same_tenant_source_is_not() -> None:
    configured = settings(HOME_TENANT_ID=HOME)
    asked: list[tuple[str | None, str]] = []

    def tokens_for(tenant: str | None, scope: str) -> object:
        asked.append((tenant, scope))
        return lambda: "token"

    main, home, prod = (configured.account(alias) for alias in ("main", "home", "prod"))
    assert source_link(configured, main, home.arm_id, tokens_for) is None  # type: ignore[arg-type]
    assert source_link(configured, main, "/subscriptions/x/unknown", tokens_for) is None  # type: ignore[arg-type]
    link = source_link(configured, prod, main.arm_id, tokens_for)  # type: ignore[arg-type]
    assert link is not None and link.tenants == (HOME, OTHER) and link.source_id == main.arm_id
    assert asked == [(None, "https://management.azure.com/.default")]
    reverse = source_link(configured, main, prod.arm_id, tokens_for)  # type: ignore[arg-type]
    assert reverse is not None and reverse.tenants == (OTHER, HOME)
    assert [tenant for tenant, _ in reverse.auxiliary()] == [OTHER]


@pytest.mark.parametrize(
    ("code", "fix"),
    [
        ("700016", f"/{OTHER}/adminconsent?client_id={APP}"),
        ("70021", "subject the identity's principal id, audience api://AzureADTokenExchange"),
        ("700212", "audience must be api://AzureADTokenExchange"),
        ("700236", "registered in the managed identity's own tenant"),
    ],
)
def test_entra_refusals_name_tenant_code_and_fix_but_not_entra_ids(code: str, fix: str) -> None:
    configured = settings(HOME_TENANT_ID=HOME, CROSS_TENANT_APP_CLIENT_ID=APP)
    text = (
        f"Microsoft Entra ID error '(invalid_client) AADSTS{code}: refused. Trace ID: "
        "11111111-2222-3333-4444-555555555555 Correlation ID: 66666666-7777-8888-9999-000000000000'"
    )
    error = exchange_failed(configured, OTHER)("https://management.azure.com/.default", ClientAuthenticationError(text))
    assert (error.status, error.code) == (502, "CrossTenantTokenFailed")
    assert OTHER in error.message and f"AADSTS{code}" in error.message and fix in error.message
    assert "11111111-2222" not in error.message and "66666666" not in error.message


class Exchange:
    """A stand-in for the exchange credential of one tenant: counts the exchanges."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def get_token_info(self, *scopes: str, options: object = None) -> AccessTokenInfo:
        with self.lock:
            self.calls += 1
        time.sleep(0.02)
        return AccessTokenInfo(f"{scopes[0]}-{self.calls}", int(time.time() + 3600))


def test_one_exchange_per_tenant_and_scope_for_many_threads() -> None:
    configured = settings(HOME_TENANT_ID=HOME, CROSS_TENANT_APP_CLIENT_ID=APP, AZURE_CLIENT_ID=APP)
    made: dict[str, Exchange] = {}
    tokens = TenantTokens(configured, object(), exchange=lambda tenant: made.setdefault(tenant, Exchange()))  # type: ignore[arg-type]
    arm = tokens.credential(OTHER, "https://management.azure.com/.default")
    with ThreadPoolExecutor(16) as pool:
        got = set(pool.map(lambda _: arm.get_token("https://management.azure.com/.default").token, range(100)))
    assert got == {"https://management.azure.com/.default-1"}
    tokens.provider(OTHER, "https://cognitiveservices.azure.com/.default")()
    assert made[OTHER].calls == 2  # one per scope


@pytest.mark.parametrize("missing", ["CROSS_TENANT_APP_CLIENT_ID", "AZURE_CLIENT_ID"])
def test_a_foreign_tenant_without_its_settings_names_the_missing_one(missing: str) -> None:
    given = {"HOME_TENANT_ID": HOME, "CROSS_TENANT_APP_CLIENT_ID": APP, "AZURE_CLIENT_ID": APP}
    given.pop(missing)
    tokens = TenantTokens(settings(**given), object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError) as raised:
        tokens.provider(OTHER, "https://management.azure.com/.default")
    assert raised.value.target == missing
    assert tokens.provider(None, "https://management.azure.com/.default") is not None  # the home tenant still works


def test_azure_identity_failure_lines_lose_anything_shaped_like_a_token(caplog: pytest.LogCaptureFixture) -> None:
    redact_identity_logs()
    logger = logging.getLogger("azure.identity._internal.get_token_mixin")
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJ0aWQiOiJ4In0.c2lnbmF0dXJl"  # pragma: allowlist secret
    with caplog.at_level(logging.WARNING):
        try:
            raise RuntimeError(f"assertion {jwt}")
        except RuntimeError as error:
            logger.warning("ClientAssertionCredential failed: %s", error, exc_info=True)
    assert "eyJ" not in caplog.text and "<redacted>" in caplog.text
