"""Tokens of other Entra tenants, with no secret: the managed identity vouches for a multi-tenant app.

An account whose `tenantId` is not `HOME_TENANT_ID` lives in another tenant, where the Function App's managed
identity has no standing. A multi-tenant app registration of the home tenant trusts the identity through a
federated identity credential (issuer `<authority>/<home tenant>/v2.0`, subject the identity's principal id,
audience `api://AzureADTokenExchange`), and is consented in the other tenant. To get a token there, the
service asks the user-assigned identity (`AZURE_CLIENT_ID`; a system-assigned one cannot be trusted this way)
for a token of the exchange audience and presents it as the client assertion of that app in the other tenant
(`ClientAssertionCredential`). Tokens are cached per (tenant, scope) and renewed once per lifetime.

Entra's refusals become `502 CrossTenantTokenFailed` naming the tenant, the AADSTS code and the fix; ARM's
refusals of a foreign token become `403 CrossTenantAuthorizationFailed`. No token or assertion is logged:
azure-identity's own failure lines pass through a filter that removes anything shaped like a token.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .errors import ConfigurationError, ServiceError
from .identity import ProviderCredential, TokenProvider
from .projects import Project
from .settings import Account, Settings

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.core.exceptions import ClientAuthenticationError

log = logging.getLogger(__name__)

RunBlocking = Callable[[Callable[[], str]], Awaitable[str]]
TokensFor = Callable[[str | None, str], TokenProvider]  # (tenant or None for the home one, scope) -> tokens

PUBLIC_AUTHORITY = "login.microsoftonline.com"
# The exchange audience is per cloud; the federated credential must name the same one.
EXCHANGE_AUDIENCES = {
    PUBLIC_AUTHORITY: "api://AzureADTokenExchange",
    "login.microsoftonline.us": "api://AzureADTokenExchangeUSGov",
    "login.chinacloudapi.cn": "api://AzureADTokenExchangeChina",
    "login.partner.microsoftonline.cn": "api://AzureADTokenExchangeChina",
}
DEFAULT_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"
MAX_AUXILIARY_TOKENS = 3  # ARM's limit on x-ms-authorization-auxiliary
AUXILIARY_HEADER = "x-ms-authorization-auxiliary"
CROSS_TENANT_ROLE = "Cognitive Services OpenAI Contributor"

_AADSTS = re.compile(r"AADSTS(\d+)")
_TRACE = re.compile(r"Trace ID:\s*([0-9a-fA-F-]{36})")
_CORRELATION = re.compile(r"Correlation ID:\s*([0-9a-fA-F-]{36})")
_TOKEN_SHAPED = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")


class CrossTenantTokenFailed(ServiceError):
    """Entra refused to exchange the managed identity's token for a token of another tenant."""

    status = 502
    code = "CrossTenantTokenFailed"


class CrossTenantAuthorizationFailed(ServiceError):
    """ARM refused a token of another tenant, or the multi-tenant app's rights there."""

    status = 403
    code = "CrossTenantAuthorizationFailed"


# Tenant resolution


def tenant_of(settings: Settings, account: Account | Project) -> str | None:
    """The tenant to reach `account` (or a Foundry project) in: None for the Function App's own tenant, else the
    other tenant's id."""
    if account.tenant_id is None:
        return None
    home = settings.home_tenant_id
    if home is None:
        kind = "Project" if isinstance(account, Project) else "Account"
        raise ConfigurationError(
            f"{kind} '{account.alias}' names tenantId {account.tenant_id}, but HOME_TENANT_ID is not set, so the "
            "service cannot tell whether that is its own tenant. Set HOME_TENANT_ID to the tenant of the Function "
            "App's managed identity.",
            target="HOME_TENANT_ID",
        )
    return None if account.tenant_id.lower() == home.lower() else account.tenant_id.lower()


def authority_host(settings: Settings) -> str:
    """The Entra host in use (`AZURE_AUTHORITY_HOST`, as azure-identity reads it; the public cloud by default)."""
    value = (settings.azure_authority_host or PUBLIC_AUTHORITY).strip()
    parts = urlsplit(value if "//" in value else f"https://{value}")
    return (parts.netloc or PUBLIC_AUTHORITY).lower()


def instance_discovery_off(settings: Settings) -> bool:
    """True when the authority is not a public Entra cloud (a private cloud, the local simulator): no call may
    leave for a public discovery endpoint."""
    return authority_host(settings) not in EXCHANGE_AUDIENCES


def exchange_scope(settings: Settings) -> str:
    return EXCHANGE_AUDIENCES.get(authority_host(settings), DEFAULT_EXCHANGE_AUDIENCE) + "/.default"


def auxiliary_header(tokens: Sequence[str]) -> str:
    """The value of `x-ms-authorization-auxiliary`: one `Bearer <token>` per tenant, comma-separated, at most 3."""
    if not tokens or len(tokens) > MAX_AUXILIARY_TOKENS:
        raise ValueError(f"ARM takes 1 to {MAX_AUXILIARY_TOKENS} auxiliary tokens, not {len(tokens)}")
    return ", ".join(f"Bearer {token}" for token in tokens)


@dataclass(frozen=True)
class SourceLink:
    """A deploy whose source account is in another tenant than its target: ARM gets `sourceAccount` and a token
    of the source tenant in `x-ms-authorization-auxiliary`."""

    source_tenant: str
    target_tenant: str
    source_id: str
    token: TokenProvider

    @property
    def tenants(self) -> tuple[str, str]:
        return self.source_tenant, self.target_tenant

    @property
    def linked(self) -> tuple[str, str]:
        return self.source_tenant, self.source_id

    def auxiliary(self) -> tuple[tuple[str, Callable[[], str]], ...]:
        """The ARM client's `auxiliary` option; the token is fetched now, so a refused exchange comes first."""
        self.token()
        return ((self.source_tenant, self.token),)


def source_link(
    settings: Settings,
    target: Account,
    source_id: str | None,
    tokens_for: TokensFor | None,
) -> SourceLink | None:
    """The cross-tenant link when `source_id` is a configured account in another tenant than `target`."""
    source = next(
        (item for item in settings.accounts.values() if source_id and item.arm_id.lower() == source_id.lower()), None
    )
    if source is None or source_id is None:
        return None
    source_tenant, target_tenant = tenant_of(settings, source), tenant_of(settings, target)
    if source_tenant == target_tenant:
        return None
    if tokens_for is None:
        raise ConfigurationError("The deployment service was built without token sources for other tenants.")
    home = str(settings.home_tenant_id).lower()  # set, since one of the two is another tenant
    token = tokens_for(source_tenant, settings.arm_scope)
    return SourceLink(source_tenant or home, target_tenant or home, source_id, token)


# Errors


_FIXES = {
    "700016": "Grant admin consent to the multi-tenant app (CROSS_TENANT_APP_CLIENT_ID) in tenant {tenant}: "
    "open https://{authority}/{tenant}/adminconsent?client_id={app} as an administrator of that tenant.",
    "70021": "Add a federated identity credential to the multi-tenant app that trusts the Function App's "
    "user-assigned identity: issuer https://{authority}/<HOME_TENANT_ID>/v2.0, subject the identity's principal "
    "id, audience {audience}.",
    "700211": "The federated credential's issuer must be https://{authority}/<HOME_TENANT_ID>/v2.0.",
    "700212": "The federated credential's audience must be {audience}.",
    "700213": "The federated credential's subject must be the principal (object) id of the identity named by "
    "AZURE_CLIENT_ID.",
    "700236": "The multi-tenant app must be registered in the managed identity's own tenant (HOME_TENANT_ID); "
    "register it there and consent to it in tenant {tenant}.",
}


_GENERAL_FIX = "Check the multi-tenant app, its federated credential and its consent in tenant {tenant}."


def exchange_failed(settings: Settings, tenant: str) -> Callable[[str, ClientAuthenticationError], ServiceError]:
    """How a refused exchange for `tenant` is answered: 502 naming the tenant, the AADSTS code and the fix."""

    def failure(scope: str, error: ClientAuthenticationError) -> ServiceError:
        text = error.message or str(error)
        found = _AADSTS.search(text)
        code = found.group(1) if found else None
        trace, correlation = _TRACE.search(text), _CORRELATION.search(text)
        # Support asks for Entra's ids: they go to the log, never to the caller.
        log.warning(
            "Token exchange for tenant %s (%s) refused: AADSTS%s (trace %s, correlation %s)",
            tenant,
            scope,
            code or "?",
            trace.group(1) if trace else "-",
            correlation.group(1) if correlation else "-",
        )
        fix = _FIXES.get(code or "", _GENERAL_FIX)
        fix = fix.format(
            tenant=tenant,
            authority=authority_host(settings),
            app=settings.cross_tenant_app_client_id,
            audience=exchange_scope(settings).removesuffix("/.default"),
        )
        said = f"AADSTS{code}" if code else "an error without an AADSTS code"
        return CrossTenantTokenFailed(
            f"Entra refused a token of tenant {tenant} for the multi-tenant app ({said}). {fix}", target="tenantId"
        )

    return failure


def arm_refused(tenants: Sequence[str], code: str, role_scope: str | None = None) -> CrossTenantAuthorizationFailed:
    """ARM's refusal of a token of another tenant (`InvalidAuthenticationTokenTenant`, an expired auxiliary
    token) or of the app's rights on a linked account there (`LinkedAuthorizationFailed`)."""
    named = ", ".join(tenants)
    where = f" on {role_scope}" if role_scope else ""
    return CrossTenantAuthorizationFailed(
        f"ARM refused the service's access in tenant {named} ({code}). The multi-tenant app "
        f"(CROSS_TENANT_APP_CLIENT_ID) needs admin consent in tenant {named} and the '{CROSS_TENANT_ROLE}' "
        f"role{where}; check the account's tenantId in AZURE_OPENAI_ACCOUNTS.",
        target="source" if role_scope else "tenantId",
    )


class _NoTokens(logging.Filter):
    """Removes anything shaped like a token from azure-identity's log lines, and their tracebacks."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        cleaned = _TOKEN_SHAPED.sub("<redacted>", text)
        if cleaned != text or record.exc_info:
            record.msg, record.args, record.exc_info, record.exc_text = cleaned, (), None, None
        return True


_REDACTED_LOGGERS = (
    "azure.identity._internal.get_token_mixin",
    "azure.identity._internal.decorators",
    "azure.identity._internal.msal_managed_identity_client",
    "azure.identity._credentials.managed_identity",
)
_filter = _NoTokens()


def redact_identity_logs() -> None:
    for name in _REDACTED_LOGGERS:
        logger = logging.getLogger(name)
        if _filter not in logger.filters:
            logger.addFilter(_filter)


# Token sources


CredentialFactory = Callable[[str], "TokenCredential"]


class TenantTokens:
    """One token provider per (tenant, scope): the home credential's for the home tenant, an exchange for others.

    `exchange` makes the credential for a foreign tenant (tests pass their own); by default it is azure-identity's
    `ClientAssertionCredential` whose assertion is the user-assigned identity's exchange token.
    """

    def __init__(
        self,
        settings: Settings,
        home: TokenCredential,
        run_blocking: RunBlocking | None = None,
        *,
        exchange: CredentialFactory | None = None,
    ) -> None:
        self.settings = settings
        self._home = home
        self._run_blocking = run_blocking
        self._exchange = exchange
        self._lock = threading.Lock()
        self._providers: dict[tuple[str | None, str], TokenProvider] = {}
        self._credentials: dict[str, Any] = {}
        redact_identity_logs()

    def provider(self, tenant: str | None, scope: str) -> TokenProvider:
        """Tokens for `scope` in `tenant` (None: the home tenant)."""
        key = (tenant.lower() if tenant else None, scope)
        provider = self._providers.get(key)
        if provider is not None:
            return provider
        with self._lock:
            provider = self._providers.get(key)
            if provider is None:
                if key[0] is None:
                    provider = TokenProvider(scope, self._home, self._run_blocking)
                else:
                    credential = self._foreign_credential(key[0])
                    failure = exchange_failed(self.settings, key[0])
                    provider = TokenProvider(scope, credential, self._run_blocking, failure=failure)
                self._providers[key] = provider
        return provider

    def for_account(self, account: Account, scope: str) -> TokenProvider:
        return self.provider(tenant_of(self.settings, account), scope)

    def credential(self, tenant: str | None, scope: str) -> TokenCredential:
        """A `TokenCredential` for azure-core policies, drawing on the shared provider of (tenant, scope)."""
        return ProviderCredential(self.provider(tenant, scope))

    def close(self) -> None:
        with self._lock:
            for credential in self._credentials.values():
                closer = getattr(credential, "close", None)
                if callable(closer):
                    closer()
            self._credentials.clear()
            self._providers.clear()

    def _foreign_credential(self, tenant: str) -> Any:
        settings = self.settings
        if not settings.cross_tenant_app_client_id:
            raise ConfigurationError(
                f"Tenant {tenant} is another tenant: set CROSS_TENANT_APP_CLIENT_ID to the client id of the "
                "multi-tenant app that trusts the Function App's user-assigned identity.",
                target="CROSS_TENANT_APP_CLIENT_ID",
            )
        if not settings.azure_client_id:
            raise ConfigurationError(
                f"Tenant {tenant} is another tenant: set AZURE_CLIENT_ID to the client id of the Function App's "
                "user-assigned managed identity (only a user-assigned identity can be trusted by the "
                "multi-tenant app).",
                target="AZURE_CLIENT_ID",
            )
        credential = self._credentials.get(tenant)
        if credential is None:
            credential = self._exchange(tenant) if self._exchange else self._client_assertion(tenant)
            self._credentials[tenant] = credential
        return credential

    def _client_assertion(self, tenant: str) -> TokenCredential:
        from azure.identity import ClientAssertionCredential, ManagedIdentityCredential

        settings = self.settings
        scope = exchange_scope(settings)
        assertion = self._providers.get((None, "assertion:" + scope))
        if assertion is None:
            identity = ManagedIdentityCredential(client_id=settings.azure_client_id)
            self._credentials["assertion"] = identity
            assertion = TokenProvider(scope, identity, self._run_blocking)
            self._providers[(None, "assertion:" + scope)] = assertion
        options: dict[str, Any] = {"authority": authority_host(settings)}
        if instance_discovery_off(settings):
            options["disable_instance_discovery"] = True
        assert settings.cross_tenant_app_client_id is not None  # checked by the caller
        return ClientAssertionCredential(tenant, settings.cross_tenant_app_client_id, assertion, **options)
