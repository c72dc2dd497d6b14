"""Tenants: which tenant owns each subscription, and the multi-tenant app the managed identity may act as.

Config (all optional):

    "crossTenantApp": {
        "clientId": "<guid>",                 # the multi-tenant app registration (home tenant)
        "trustedIdentities": ["<client id>"], # user-assigned identities its federated credential trusts
        "consentedTenants": ["<tenant>"],     # tenants where an administrator consented to the app
        "expiredTokenTenants": ["<tenant>"]   # fault: tokens issued there are already expired
    }

and per account `"tenantId"` (default: the top-level `tenantId`, the identity's own tenant) and
`"denyLinkedAccess": true` (fault: the app holds no role on the account when it is a linked source).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .config_readers import ConfigError, read_object, read_strings, refuse_unknown_keys

EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
_APP_KEYS = frozenset({"clientId", "trustedIdentities", "consentedTenants", "expiredTokenTenants"})


@dataclass(frozen=True)
class CrossTenantApp:
    client_id: str
    trusted_identities: tuple[str, ...] = ()
    consented_tenants: tuple[str, ...] = ()
    expired_token_tenants: tuple[str, ...] = ()

    def consented(self, tenant: str) -> bool:
        return tenant.lower() in {item.lower() for item in self.consented_tenants}

    def expired_in(self, tenant: str) -> bool:
        return tenant.lower() in {item.lower() for item in self.expired_token_tenants}

    def to_json(self) -> dict[str, Any]:
        return {
            "clientId": self.client_id,
            "trustedIdentities": list(self.trusted_identities),
            "consentedTenants": list(self.consented_tenants),
            "expiredTokenTenants": list(self.expired_token_tenants),
        }


def parse_cross_tenant_app(raw: object) -> CrossTenantApp | None:
    if raw is None:
        return None
    body = read_object(raw, "crossTenantApp")
    refuse_unknown_keys(body, _APP_KEYS, "crossTenantApp")
    client_id = body.get("clientId")
    if not isinstance(client_id, str) or not client_id:
        raise ConfigError("crossTenantApp.clientId: required, a non-empty string")
    return CrossTenantApp(
        client_id=client_id,
        trusted_identities=tuple(read_strings(body.get("trustedIdentities", []), "crossTenantApp.trustedIdentities")),
        consented_tenants=tuple(read_strings(body.get("consentedTenants", []), "crossTenantApp.consentedTenants")),
        expired_token_tenants=tuple(
            read_strings(body.get("expiredTokenTenants", []), "crossTenantApp.expiredTokenTenants")
        ),
    )


def subscription_tenant(accounts: Iterable[Any], subscription_id: str, home: str) -> str:
    """A subscription belongs to one tenant: the tenant of its accounts, else the identity's own."""
    for account in accounts:
        if account.subscription_id.lower() == subscription_id.lower():
            return str(account.tenant_id or home).lower()
    return home.lower()


def unverified_tenant(token: str) -> str | None:
    """The `tid` claim of a JWT, read without checking it (for the request log only)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    tenant = claims.get("tid") if isinstance(claims, dict) else None
    return str(tenant) if tenant else None


def bearer_tokens(header_values: Iterable[str]) -> list[str]:
    """The tokens of `x-ms-authorization-auxiliary` headers: `Bearer <t1>, Bearer <t2>` per header."""
    tokens = []
    for value in header_values:
        for part in value.split(","):
            scheme, _, token = part.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                tokens.append(token.strip())
    return tokens
