"""The Entra token endpoint of every tenant, for the client-assertion exchange of a multi-tenant app.

`POST /{tenant}/oauth2/v2.0/token` (grant `client_credentials`, a `client_assertion` of type jwt-bearer) and
`GET /{tenant}/v2.0/.well-known/openid-configuration`. The assertion must be a managed-identity token of this
simulator for `api://AzureADTokenExchange`, from an identity the configured multi-tenant app trusts; the
tenant must be the app's own or one that consented to it. Refusals carry Entra's AADSTS error bodies.
Served over HTTPS (azure-identity refuses any other authority).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .config import SimulatorConfig
from .identity import TokenRejected, TokenService, derived_id
from .tenancy import EXCHANGE_AUDIENCE

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_PATH = "/{tenant}/oauth2/v2.0/token"  # noqa: S105 - a route, not a secret
DISCOVERY_PATH = "/{tenant}/v2.0/.well-known/openid-configuration"


class EntraRefusal(Exception):
    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.code, self.description = status, error, code, description

    def to_response(self) -> JSONResponse:
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return JSONResponse(
            {
                "error": self.error,
                "error_description": f"AADSTS{self.code}: {self.description} Trace ID: {trace} "
                f"Correlation ID: {correlation} Timestamp: {stamp}",
                "error_codes": [self.code],
                "timestamp": stamp,
                "trace_id": trace,
                "correlation_id": correlation,
                "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
            },
            status_code=self.status,
        )


def known_tenants(config: SimulatorConfig) -> set[str]:
    tenants = {config.tenant_id.lower(), *(config.tenant_of(account) for account in config.accounts)}
    if config.cross_tenant_app is not None:
        tenants.update(item.lower() for item in config.cross_tenant_app.consented_tenants)
    return tenants


def discovery(request: Request, config: SimulatorConfig) -> Response:
    tenant = request.path_params["tenant"]
    if tenant.lower() not in known_tenants(config):
        return EntraRefusal(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.").to_response()
    base = str(request.base_url).rstrip("/")
    return JSONResponse(
        {
            "issuer": f"{base}/{tenant}/v2.0",
            "token_endpoint": f"{base}/{tenant}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/{tenant}/oauth2/v2.0/authorize",
            "jwks_uri": f"{base}/{tenant}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "tenant_region_scope": None,
            "cloud_instance_name": "microsoftonline.com",
        }
    )


async def token(request: Request, config: SimulatorConfig, tokens: TokenService) -> Response:
    try:
        # Parsed here: Starlette's form parser needs python-multipart, which the simulator does without.
        form = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
        fields = {key: values[0] for key, values in form.items()}
        return _exchange(request.path_params["tenant"], fields, config, tokens)
    except EntraRefusal as refusal:
        return refusal.to_response()


def _exchange(tenant: str, form: dict[str, str], config: SimulatorConfig, tokens: TokenService) -> Response:
    tenant = tenant.lower()
    if tenant not in known_tenants(config):
        raise EntraRefusal(
            400,
            "invalid_tenant",
            90002,
            f"Tenant '{tenant}' not found. Check to make sure you "
            "have the correct tenant ID and are signing into the correct cloud.",
        )
    if form.get("grant_type") != "client_credentials":
        raise EntraRefusal(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
    assertion, client_id = form.get("client_assertion"), form.get("client_id", "")
    if form.get("client_assertion_type") != ASSERTION_TYPE or not assertion:
        raise EntraRefusal(
            400,
            "invalid_request",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    app = config.cross_tenant_app
    if app is None or app.client_id.lower() != client_id.lower():
        raise _not_in_directory(client_id, tenant)
    claims = _assertion_claims(assertion, tokens)
    issuer = str(claims.get("iss", ""))
    subject = str(claims.get("sub", ""))
    if claims.get("aud") != EXCHANGE_AUDIENCE:
        raise EntraRefusal(
            400,
            "invalid_client",
            700212,
            f"No matching federated identity record found for presented assertion audience '{claims.get('aud')}'.",
        )
    if str(claims.get("tid", "")).lower() != config.tenant_id.lower():
        raise EntraRefusal(
            400,
            "invalid_client",
            700236,
            f"Entra ID tokens issued by issuer '{issuer}' may not "
            "be used for federated identity credential flows for applications or managed identities "
            "registered in this tenant.",
        )
    trusted = {derived_id("user-assigned", item) for item in app.trusted_identities}
    if subject not in trusted:
        raise EntraRefusal(
            400,
            "invalid_client",
            70021,
            "No matching federated identity record found for "
            f"presented assertion. Assertion Issuer: '{issuer}'. Assertion Subject: '{subject}'. "
            f"Assertion Audience: '{EXCHANGE_AUDIENCE}'.",
        )
    if tenant != config.tenant_id.lower() and not app.consented(tenant):
        raise _not_in_directory(client_id, tenant)
    scope = form.get("scope", "")
    if not scope.endswith("/.default"):
        raise EntraRefusal(
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {scope} is not valid. "
            "Client credential flows must have a scope value with /.default suffixed to the "
            "resource identifier (application ID URI).",
        )
    return _issue(tenant, app.client_id, scope.removesuffix("/.default"), config, tokens)


def _assertion_claims(assertion: str, tokens: TokenService) -> dict[str, Any]:
    try:
        return tokens.verify("Bearer " + assertion, frozenset({EXCHANGE_AUDIENCE, EXCHANGE_AUDIENCE + "/"}))
    except TokenRejected as rejected:
        if rejected.code == "ExpiredAuthenticationToken":
            raise EntraRefusal(
                400, "invalid_client", 700024, "Client assertion is not within its valid time range."
            ) from None
        if rejected.code == "InvalidAuthenticationTokenAudience":
            audience = jwt.decode(assertion, options={"verify_signature": False}).get("aud")
            raise EntraRefusal(
                400,
                "invalid_client",
                700212,
                f"No matching federated identity record found for presented assertion audience '{audience}'.",
            ) from None
        raise EntraRefusal(400, "invalid_client", 50027, "JWT token is invalid or malformed.") from None


def _not_in_directory(client_id: str, tenant: str) -> EntraRefusal:
    return EntraRefusal(
        400,
        "unauthorized_client",
        700016,
        f"Application with identifier '{client_id}' was not "
        f"found in the directory '{tenant}'. This can happen if the application has not been "
        "installed by the administrator of the tenant or consented to by any user in the tenant. "
        "You may have sent your authentication request to the wrong tenant.",
    )


def _issue(tenant: str, client_id: str, resource: str, config: SimulatorConfig, tokens: TokenService) -> Response:
    now = int(time.time())
    app = config.cross_tenant_app
    lifetime = -120 if app is not None and app.expired_in(tenant) else config.token_lifetime_seconds
    principal = derived_id("service-principal", f"{tenant}:{client_id}")
    claims = {
        "aud": resource,
        "iss": f"https://sts.windows.net/{tenant}/",
        "iat": now,
        "nbf": now - 300 if lifetime < 0 else now,
        "exp": now + lifetime,
        "tid": tenant,
        "oid": principal,
        "sub": principal,
        "appid": client_id,
        "idtyp": "app",
        "ver": "1.0",
    }
    return JSONResponse(
        {
            "token_type": "Bearer",
            "expires_in": max(lifetime, 1),
            "ext_expires_in": max(lifetime, 1),
            "access_token": tokens.sign(claims),
        }
    )
