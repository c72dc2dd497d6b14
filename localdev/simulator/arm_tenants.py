"""ARM's multi-tenant checks: a token of the subscription's tenant, and for a source account in another tenant
an auxiliary token of that tenant (`x-ms-authorization-auxiliary`) whose principal may read the source."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from .config import AccountConfig, SimulatorConfig
from .errors import ArmError
from .identity import ARM_AUDIENCES, TokenRejected, TokenService
from .rules import parse_account_id
from .tenancy import bearer_tokens, subscription_tenant

AUXILIARY_HEADER = "x-ms-authorization-auxiliary"
MAX_AUXILIARY_TOKENS = 3


def wrong_tenant(token_tenant: str, expected: str, what: str = "access token") -> ArmError:
    return ArmError(
        401,
        "InvalidAuthenticationTokenTenant",
        f"The {what} is from the wrong issuer 'https://sts.windows.net/{token_tenant}/'. It must match the tenant "
        f"'https://sts.windows.net/{expected}/' associated with this subscription. Please use the authority (URL) "
        f"'https://login.windows.net/{expected}' to get the token. Note, if the subscription is transferred to "
        "another tenant there is no impact to the services, but information about new tenant could take time to "
        "propagate (up to an hour). If you just transferred your subscription and see this error message, please "
        "try back later.",
    )


def check_token_tenant(config: SimulatorConfig, claims: dict[str, Any], subscription: str | None) -> None:
    """The token's tenant must own the subscription in the path."""
    if subscription is None:
        return
    expected = subscription_tenant(config.accounts, subscription, config.tenant_id)
    token_tenant = str(claims.get("tid", "")).lower()
    if token_tenant != expected:
        raise wrong_tenant(token_tenant, expected)


def check_linked_source(
    config: SimulatorConfig, tokens: TokenService, request: Request, target: AccountConfig, model: Any, caller: str
) -> None:
    """A `sourceAccount` in another tenant needs a valid auxiliary token of that tenant and the right to read it;
    a `source` in another tenant is refused (ARM links it with the caller's own tenant only)."""
    for field_name in ("source", "sourceAccount"):
        source_id = getattr(model, "source" if field_name == "source" else "source_account")
        parsed = parse_account_id(source_id) if source_id else None
        source = config.find_account(*parsed) if parsed else None
        if source is None or config.tenant_of(source) == config.tenant_of(target):
            continue
        source_tenant = config.tenant_of(source)
        if field_name == "source":
            raise _linked_denied(caller, target, source)
        values = request.headers.getlist(AUXILIARY_HEADER)
        found = bearer_tokens(values)
        if len(found) > MAX_AUXILIARY_TOKENS:
            raise ArmError(400, "TooManyAuxiliaryTokens", "At most 3 auxiliary tokens are allowed.")
        claims = _auxiliary_of(tokens, found, source_tenant)
        if claims is None:
            raise wrong_tenant("(none)", source_tenant, "auxiliary token")
        if source.deny_linked_access:
            raise _linked_denied(str(claims.get("oid")), target, source)


def _auxiliary_of(tokens: TokenService, found: list[str], tenant: str) -> dict[str, Any] | None:
    for token in found:
        try:
            claims = tokens.verify("Bearer " + token, ARM_AUDIENCES)
        except TokenRejected as rejected:
            if rejected.code == "ExpiredAuthenticationToken":
                raise ArmError(401, "ExpiredAuthenticationToken", f"The auxiliary token: {rejected.message}") from None
            raise ArmError(401, "InvalidAuthenticationToken", f"The auxiliary token: {rejected.message}") from None
        if str(claims.get("tid", "")).lower() == tenant:
            return claims
    return None


def _linked_denied(principal: str, target: AccountConfig, source: AccountConfig) -> ArmError:
    return ArmError(
        403,
        "LinkedAuthorizationFailed",
        f"The client '{principal}' with object id '{principal}' has permission to perform action "
        f"'Microsoft.CognitiveServices/accounts/deployments/write' on scope '{target.arm_id}'; however, it does not "
        "have permission to perform action(s) 'Microsoft.CognitiveServices/accounts/models/read' on the linked "
        f"scope(s) '{source.arm_id}' (respectively) or the linked scope(s) are invalid.",
    )
