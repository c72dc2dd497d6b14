"""Managed-identity token endpoint (App Service / Functions protocol) and the tokens it issues.

Tokens are HS256 JWTs signed with a key that lives only in this process, so ARM can tell a token
from this simulator from anything else, and no token outlives the process.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .config import SimulatorConfig
from .errors import identity_error_response
from .tenancy import EXCHANGE_AUDIENCE

IDENTITY_API_VERSION = "2019-08-01"
ARM_AUDIENCES = frozenset(
    {"https://management.azure.com", "https://management.azure.com/", "https://management.core.windows.net/"}
)
# Azure OpenAI accepts tokens for Cognitive Services and, on newer resources, for Azure AI Foundry.
DATA_PLANE_AUDIENCES = frozenset(
    {
        "https://cognitiveservices.azure.com",
        "https://cognitiveservices.azure.com/",
        "https://ai.azure.com",
        "https://ai.azure.com/",
    }
)
# Deterministic ids: the same client_id always maps to the same simulated user-assigned identity.
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:localdev:azure-simulator:identity")
_SELECTOR_PARAMS = ("client_id", "mi_res_id", "object_id")


@dataclass(frozen=True)
class ManagedIdentity:
    client_id: str
    principal_id: str


class TokenRejected(Exception):
    """A bearer token ARM must refuse; `code` is the ARM error code to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def derived_id(kind: str, value: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, f"{kind}:{value.lower()}"))


def resolve_identity(config: SimulatorConfig, query: dict[str, str]) -> ManagedIdentity:
    """System-assigned by default; any client_id / mi_res_id / object_id names a user-assigned one."""
    if client_id := query.get("client_id"):
        return ManagedIdentity(client_id=client_id, principal_id=derived_id("user-assigned", client_id))
    if resource_id := query.get("mi_res_id"):
        client_id = derived_id("resource-client", resource_id)
        return ManagedIdentity(client_id=client_id, principal_id=derived_id("user-assigned", client_id))
    if object_id := query.get("object_id"):
        return ManagedIdentity(client_id=derived_id("object-client", object_id), principal_id=object_id)
    system_client_id = derived_id("system-client", config.principal_id)
    return ManagedIdentity(client_id=system_client_id, principal_id=config.principal_id)


class TokenService:
    """Issues and verifies the simulator's access tokens."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def issue(self, config: SimulatorConfig, resource: str, identity: ManagedIdentity) -> tuple[str, int]:
        now = int(time.time())
        expires_on = now + config.token_lifetime_seconds
        # A token for the exchange audience is a v2 token: Entra matches its issuer against a federated credential.
        exchange = resource.rstrip("/") == EXCHANGE_AUDIENCE
        claims = {
            "aud": resource,
            "iss": f"https://login.microsoftonline.com/{config.tenant_id}/v2.0"
            if exchange
            else f"https://sts.windows.net/{config.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": expires_on,
            "tid": config.tenant_id,
            "oid": identity.principal_id,
            "sub": identity.principal_id,
            "appid": identity.client_id,
            "idtyp": "app",
            "ver": "1.0",
        }
        return self.sign(claims), expires_on

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._key, algorithm="HS256")

    def verify_for_arm(self, authorization: str | None) -> dict[str, Any]:
        """Claims of a valid ARM token, else TokenRejected with the code real ARM uses."""
        return self.verify(authorization, ARM_AUDIENCES)

    def verify(self, authorization: str | None, audiences: frozenset[str]) -> dict[str, Any]:
        """Claims of a valid token of this simulator for one of `audiences`, else TokenRejected.

        The codes and messages are ARM's; other services reword them in their own error shape.
        """
        if not authorization:
            raise TokenRejected("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenRejected(
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is provided in an invalid format.",
            )
        try:
            claims: dict[str, Any] = jwt.decode(
                token.strip(),
                self._key,
                algorithms=["HS256"],
                options={"verify_aud": False, "require": ["exp", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            expired_at = _utc_text(jwt.decode(token.strip(), options={"verify_signature": False})["exp"])
            raise TokenRejected(
                "ExpiredAuthenticationToken",
                f"The access token expiry UTC time '{expired_at}' is earlier than current UTC time "
                f"'{_utc_text(time.time())}'.",
            ) from None
        except jwt.InvalidTokenError:
            raise TokenRejected("InvalidAuthenticationToken", "The access token is invalid.") from None
        audience = claims.get("aud")
        if audience not in audiences:
            allowed = ",".join(f"'{value}'" for value in sorted(audiences))
            raise TokenRejected(
                "InvalidAuthenticationTokenAudience",
                f"The access token has been obtained for wrong audience or resource '{audience}'. "
                f"It should exactly match with one of the allowed audiences {allowed}.",
            )
        return claims


def _utc_text(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%m/%d/%Y %H:%M:%S")


async def handle_token_request(
    request: Request, config: SimulatorConfig, identity_header: str, tokens: TokenService
) -> Response:
    """GET /msi/token as MSAL's `_obtain_token_on_app_service` calls it."""
    sent_secret = request.headers.get("x-identity-header")
    if not sent_secret or not secrets.compare_digest(sent_secret, identity_header):
        return identity_error_response(401, "The X-IDENTITY-HEADER header is missing or does not match.")
    query = dict(request.query_params)
    api_version = query.get("api-version")
    if not api_version:
        return identity_error_response(400, "The api-version query parameter is required.")
    if api_version != IDENTITY_API_VERSION:
        return identity_error_response(
            400, f"Unsupported api-version '{api_version}'; this endpoint supports '{IDENTITY_API_VERSION}'."
        )
    resource = query.get("resource")
    if not resource:
        return identity_error_response(400, "The resource query parameter is required.")
    if sum(1 for name in _SELECTOR_PARAMS if query.get(name)) > 1:
        return identity_error_response(400, "Specify only one of client_id, mi_res_id and object_id.")
    if config.identity_latency_ms:
        await asyncio.sleep(config.identity_latency_ms / 1000)
    identity = resolve_identity(config, query)
    token, expires_on = tokens.issue(config, resource, identity)
    return JSONResponse(
        {
            "access_token": token,
            "expires_on": str(expires_on),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": identity.client_id,
        }
    )
