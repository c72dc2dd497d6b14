"""Accounts in other tenants, over real HTTP: the host's real azure-identity exchanges the user-assigned identity's
token (`ManagedIdentityCredential`) for tokens of other tenants (`ClientAssertionCredential`) at the simulator's
Entra endpoint over HTTPS, and ARM checks every token's tenant and the auxiliary token of a linked source."""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localdev.simulator.config import DEFAULT_TENANT_ID
from localdev.simulator.control_client import SimulatorControl
from localdev.wiring import DEMO_ACCOUNTS, LocalAccount, simulator_config
from tests.e2e.conftest import PROVISIONING_DELAY, Api, Stack

HOME = DEFAULT_TENANT_ID
PROD_TENANT = "00000000-0000-4000-8000-00000000a002"  # consented: the happy path
NO_CONSENT_TENANT = "00000000-0000-4000-8000-00000000a003"
NO_TRUST_TENANT = "00000000-0000-4000-8000-00000000a004"  # consented; the test removes the federated credential
EXPIRED_TENANT = "00000000-0000-4000-8000-00000000a005"  # consented; Entra issues expired tokens there
APP = "6d1f4b0e-2c3a-4e5f-9a8b-7c6d5e4f3a21"
IDENTITY = "3f2e1d0c-9b8a-4766-8554-433221100fed"

MAIN = DEMO_ACCOUNTS[0]
MODEL = MAIN.models[0]
PROD_MODEL = "gpt-4o-mini-2024-07-18.ft-b0b0b0b0b0b0"


def _account(alias: str, tenant: str, number: int, **extra: Any) -> LocalAccount:
    return LocalAccount(
        alias=alias,
        subscription_id=f"{number:08d}-1bf0-4dda-aec3-cb9272f09590",
        resource_group=f"rg-{alias}",
        account_name=f"aoai-{alias}",
        location="westeurope",
        tenant_id=tenant,
        **extra,
    )


PROD = _account(
    "prod",
    PROD_TENANT,
    2,
    models=(PROD_MODEL,),
    deployments=(
        {
            "name": "prod-chat",
            "model": {"format": "OpenAI", "name": "gpt-4o", "version": "2024-08-06"},
            "sku": {"name": "GlobalStandard", "capacity": 5},
        },
    ),
)
LAB = _account("lab", NO_CONSENT_TENANT, 3, models=(PROD_MODEL,))
OPS = _account("ops", NO_TRUST_TENANT, 4, models=(PROD_MODEL,))
EDGE = _account("edge", EXPIRED_TENANT, 5, models=(PROD_MODEL,))
ACCOUNTS = (MAIN, PROD, LAB, OPS, EDGE)
APP_CONFIG = {
    "clientId": APP,
    "trustedIdentities": [IDENTITY],
    "consentedTenants": [PROD_TENANT, NO_TRUST_TENANT, EXPIRED_TENANT],
    "expiredTokenTenants": [EXPIRED_TENANT],
}
CONFIG = simulator_config(
    ACCOUNTS,
    provisioningDelaySeconds=PROVISIONING_DELAY,
    retryAfterSeconds=1,
    crossTenantApp=APP_CONFIG,
)


def settings(stack: Stack, **overrides: str) -> dict[str, str]:
    entries = {account.alias: account.service_entry(stack.url) for account in ACCOUNTS}
    return {
        "AZURE_OPENAI_ACCOUNTS": json.dumps(entries),
        "DEFAULT_ACCOUNT": "main",
        "AZURE_CLIENT_ID": IDENTITY,
        "CROSS_TENANT_APP_CLIENT_ID": APP,
        **overrides,
    }


class Host:
    def __init__(self, stack: Stack) -> None:
        self.api = stack.start_host(**settings(stack))
        self.log = stack.folder / f"host-{len(stack.hosts) - 1}.log"


@pytest.fixture(scope="module")
def host(stack: Stack) -> Host:
    return Host(stack)


@pytest.fixture
def xsim(stack: Stack) -> Iterator[SimulatorControl]:
    stack.control.set_config(CONFIG)
    stack.control.reset()
    yield stack.control


def arm(sim: SimulatorControl, method: str | None = None) -> list[dict[str, Any]]:
    return [r for r in sim.requests("arm") if method is None or r["method"] == method]


def exchanges(sim: SimulatorControl, tenant: str) -> list[dict[str, Any]]:
    return [r for r in sim.requests("entra") if r["path"] == f"/{tenant}/oauth2/v2.0/token"]


def audit(api: Api, deployment: str) -> dict[str, Any]:
    response = api.call("GET", "/audit", params={"deployment": deployment})
    assert response.status_code == 200, response.text
    [record, *_] = response.json()["value"]
    return dict(record)


def test_deploy_into_another_tenant_sends_source_account_and_one_auxiliary_header(
    host: Host, xsim: SimulatorControl
) -> None:
    response = host.api.put("ft-prod", {"model": MODEL, "source": "main"}, account="prod", wait="15")
    assert response.status_code == 201, response.text
    assert response.json()["provisioningState"] == "Succeeded"
    assert response.json()["model"]["source"] == "main"
    [put] = arm(xsim, "PUT")
    model = put["body"]["properties"]["model"]
    assert model["sourceAccount"] == MAIN.arm_id and "source" not in model
    assert put["tokenTenant"] == PROD_TENANT  # Authorization: the target account's tenant
    assert put["auxiliaryTenants"] == [[HOME]]  # exactly one header, one token: the source's tenant
    assert {r["tokenTenant"] for r in arm(xsim)} == {PROD_TENANT}
    assert [r for r in arm(xsim, "GET") if r["auxiliaryTenants"]] == []  # reads carry no auxiliary token
    assert audit(host.api, "ft-prod")["tenants"] == {"source": HOME, "target": PROD_TENANT}


def test_deploy_from_another_tenant_into_the_home_tenant(host: Host, xsim: SimulatorControl) -> None:
    response = host.api.put("ft-home", {"model": PROD_MODEL, "source": "prod"}, wait="15")
    assert response.status_code == 201, response.text
    [put] = arm(xsim, "PUT")
    assert put["body"]["properties"]["model"]["sourceAccount"] == PROD.arm_id
    assert (put["tokenTenant"], put["auxiliaryTenants"]) == (HOME, [[PROD_TENANT]])
    record = audit(host.api, "ft-home")
    assert record["tenants"] == {"source": PROD_TENANT, "target": HOME}
    assert record["outcome"]["status"] == 201


def test_same_tenant_source_stays_source_without_auxiliary(host: Host, xsim: SimulatorControl) -> None:
    response = host.api.put("same", {"model": MODEL, "source": "main"}, wait="15")
    assert response.status_code == 201, response.text
    [put] = arm(xsim, "PUT")
    assert put["body"]["properties"]["model"]["source"] == MAIN.arm_id
    assert put["auxiliaryTenants"] == []


def test_a_deployment_in_another_tenant_is_listed_scaled_and_deleted(host: Host, xsim: SimulatorControl) -> None:
    listed = host.api.get(account="prod")
    assert listed.status_code == 200, listed.text
    assert [item["name"] for item in listed.json()["value"]] == ["prod-chat"]
    scaled = host.api.patch("prod-chat", {"sku": {"capacity": 8}}, account="prod", wait="15")
    assert scaled.status_code == 200, scaled.text
    assert scaled.json()["sku"]["capacity"] == 8
    deleted = host.api.delete("prod-chat", account="prod", wait="15")
    assert deleted.status_code in (200, 204), deleted.text
    assert host.api.get("prod-chat", account="prod").status_code == 404
    assert {r["tokenTenant"] for r in arm(xsim)} == {PROD_TENANT}
    assert audit(host.api, "prod-chat")["tenants"] == {"source": None, "target": PROD_TENANT}


def test_chat_on_an_account_in_another_tenant(host: Host, xsim: SimulatorControl) -> None:
    response = host.api.call(
        "POST",
        "/openai/deployments/prod-chat/chat/completions",
        params={"account": "prod", "api-version": "2024-10-21"},
        json={"messages": [{"role": "user", "content": "hello"}]},
    )
    assert response.status_code == 200, response.text
    [call] = xsim.requests("dataplane")
    assert call["tokenTenant"] == PROD_TENANT


def test_one_exchange_per_tenant_under_50_concurrent_requests(stack: Stack, xsim: SimulatorControl) -> None:
    fresh = Host(stack)  # nothing cached yet
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        answers = list(pool.map(lambda _: fresh.api.get(account="prod"), range(50)))
    assert {answer.status_code for answer in answers} == {200}
    assert len(exchanges(xsim, PROD_TENANT)) == 1
    exchange_tokens = [
        r for r in xsim.requests("identity") if r["query"].get("resource") == "api://AzureADTokenExchange"
    ]
    assert len(exchange_tokens) == 1


@pytest.mark.parametrize(
    ("alias", "status", "code", "said"),
    [
        ("lab", 502, "CrossTenantTokenFailed", ["AADSTS700016", NO_CONSENT_TENANT, "adminconsent?client_id=" + APP]),
        ("ops", 502, "CrossTenantTokenFailed", ["AADSTS70021", NO_TRUST_TENANT, "federated identity credential"]),
    ],
    ids=["consent-missing", "federated-credential-missing"],
)
def test_entra_refusals_say_what_to_do_and_change_nothing(
    host: Host, xsim: SimulatorControl, alias: str, status: int, code: str, said: list[str]
) -> None:
    xsim.patch_config({"crossTenantApp": {**APP_CONFIG, "trustedIdentities": [] if alias == "ops" else [IDENTITY]}})
    response = host.api.put(f"refused-{alias}", {"model": PROD_MODEL}, account=alias, wait="15")
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    for text in said:
        assert text in error["message"]
    assert "Trace ID" not in error["message"] and "eyJ" not in response.text
    assert arm(xsim) == []  # no token, no ARM call
    record = audit(host.api, f"refused-{alias}")
    assert record["outcome"] == {"status": status, "provisioningState": None, "code": code}
    assert record["changed"] is False


@pytest.mark.parametrize("fault", ["expired-auxiliary-token", "no-role-on-source"])
def test_arm_refusals_of_the_source_tenant_are_403(host: Host, xsim: SimulatorControl, fault: str) -> None:
    source = EDGE if fault == "expired-auxiliary-token" else PROD
    if fault == "no-role-on-source":
        changed = [{**account.simulator_entry(), "denyLinkedAccess": account is PROD} for account in ACCOUNTS]
        xsim.patch_config({"accounts": changed})
    response = host.api.put("linked", {"model": PROD_MODEL, "source": source.alias}, wait="15")
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "CrossTenantAuthorizationFailed"
    assert source.tenant_id in error["message"] and "Cognitive Services OpenAI Contributor" in error["message"]
    assert host.api.get("linked").status_code == 404  # nothing half-applied
    assert audit(host.api, "linked")["outcome"]["code"] == "CrossTenantAuthorizationFailed"


def test_no_token_reaches_the_host_log(host: Host, xsim: SimulatorControl) -> None:
    host.api.put("logged", {"model": PROD_MODEL}, account="lab")  # a refused exchange: azure-identity logs it
    host.api.put("logged", {"model": MODEL, "source": "main"}, account="prod", wait="15")
    log = Path(host.log).read_text(errors="replace")
    assert "AADSTS700016" in log  # the refusal is logged, for support
    assert "eyJ" not in log


def test_missing_cross_tenant_settings_refuse_only_the_foreign_accounts(stack: Stack, xsim: SimulatorControl) -> None:
    api = stack.configured(**settings(stack, CROSS_TENANT_APP_CLIENT_ID=""))
    refused = api.get(account="prod")
    assert refused.status_code == 500, refused.text
    assert refused.json()["error"]["code"] == "ConfigurationError"
    assert "CROSS_TENANT_APP_CLIENT_ID" in refused.json()["error"]["message"]
    assert api.get(account="main").status_code == 200
    no_identity = stack.configured(**settings(stack, AZURE_CLIENT_ID=""))
    assert "AZURE_CLIENT_ID" in no_identity.get(account="prod").json()["error"]["message"]
