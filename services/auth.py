"""Who is calling, and may they: the caller's principal and app roles per route, per `AUTH_MODE`.

- `entra` (the default): App Service Authentication (Easy Auth) with Microsoft Entra ID sits in front and
  presents the caller as `X-MS-CLIENT-PRINCIPAL`. The platform strips that header from incoming requests
  only when authentication is enabled, so it is trusted only then (`WEBSITE_AUTH_ENABLED=True`); otherwise
  every protected route fails closed with 503.
- `keys`: Functions keys gate the routes at the host; a key holder has every role.
- `none`: local development only; refused when running in Azure (`WEBSITE_INSTANCE_ID` is set).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from .errors import AuthenticationNotConfigured, ConfigurationError, Forbidden, Unauthorized


class Role(StrEnum):
    DEPLOYMENTS_READ = "Deployments.Read"
    DEPLOYMENTS_WRITE = "Deployments.Write"
    INFERENCE_INVOKE = "Inference.Invoke"
    AUDIT_READ = "Audit.Read"


ALL_ROLES = frozenset(Role)
# A role also grants what these roles grant.
_IMPLIED = {Role.DEPLOYMENTS_WRITE: {Role.DEPLOYMENTS_READ}}

AUTH_MODES = ("entra", "keys", "none")
_OBJECT_ID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
_APP_ID_CLAIMS = ("appid", "azp")
_NAME_CLAIMS = ("name", "preferred_username", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "upn")
_ROLE_CLAIMS = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")


@dataclass(frozen=True)
class Caller:
    """The caller as the audit trail and the logs record it (ids and a display name, nothing else)."""

    object_id: str | None = None
    app_id: str | None = None
    name: str | None = None
    roles: frozenset[Role] = field(default_factory=frozenset)

    def as_record(self) -> dict[str, str | None]:
        return {"objectId": self.object_id, "appId": self.app_id, "name": self.name}

    @property
    def label(self) -> str:
        return self.name or self.app_id or self.object_id or "anonymous"

    def granted(self) -> frozenset[Role]:
        granted = set(self.roles)
        for role in self.roles:
            granted |= _IMPLIED.get(role, set())
        return frozenset(granted)


LOCAL_DEVELOPER = Caller(name="local developer (AUTH_MODE=none)", roles=ALL_ROLES)
KEY_HOLDER = Caller(name="function key holder", roles=ALL_ROLES)


class AuthSettings(Protocol):
    """The settings authorization reads (services.settings.Settings has them)."""

    @property
    def auth_mode(self) -> str: ...

    @property
    def website_auth_enabled(self) -> bool: ...

    @property
    def website_instance_id(self) -> str | None: ...


def authorize(headers: Mapping[str, str], role: Role, settings: AuthSettings) -> Caller:
    """The caller of a request that needs `role`, or the 401/403/503 saying why it may not proceed."""
    mode = settings.auth_mode
    if mode == "none":
        if settings.website_instance_id:
            raise ConfigurationError(
                "AUTH_MODE=none is for local development only and is refused in Azure. Set AUTH_MODE=entra "
                "(App Service Authentication) or AUTH_MODE=keys.",
                target="AUTH_MODE",
            )
        return LOCAL_DEVELOPER
    if mode == "keys":
        # The Functions host has already checked the key (routes are registered at the function level).
        return KEY_HOLDER
    if not settings.website_auth_enabled:
        raise AuthenticationNotConfigured(
            "AUTH_MODE=entra, but App Service Authentication is not enabled on this app, so the caller cannot "
            "be trusted. Enable it with Microsoft Entra ID (infra/ does), or set AUTH_MODE=keys.",
            headers={"Retry-After": "60"},
        )
    caller = principal_from_header(headers.get("x-ms-client-principal"), headers.get("x-ms-client-principal-name"))
    if role not in caller.granted():
        raise Forbidden(
            f"This operation needs the app role '{role.value}'; the caller ({caller.label}) has "
            f"{', '.join(sorted(r.value for r in caller.roles)) or 'no roles'}. Ask an owner of the app "
            "registration to assign it.",
            target="role",
        )
    return caller


def principal_from_header(encoded: str | None, name_header: str | None = None) -> Caller:
    """Parse Easy Auth's `X-MS-CLIENT-PRINCIPAL` (base64 JSON: auth_typ, name_typ, role_typ, claims)."""
    if not encoded:
        raise Unauthorized(
            "No signed-in caller. Send a Microsoft Entra ID bearer token for this app's audience "
            "(api://<client-id>/.default).",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        principal = json.loads(base64.b64decode(encoded, validate=False))
        claims = principal["claims"]
        if not isinstance(claims, list):
            raise TypeError("claims is not a list")
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise Unauthorized("The caller's principal could not be read.") from None
    role_types = {principal.get("role_typ"), *_ROLE_CLAIMS} - {None}
    values: dict[str, list[str]] = {}
    for claim in claims:
        if isinstance(claim, dict) and isinstance(claim.get("typ"), str) and isinstance(claim.get("val"), str):
            values.setdefault(claim["typ"], []).append(claim["val"])
    known = {role.value: role for role in Role}
    roles = frozenset(known[val] for typ in role_types for val in values.get(str(typ), []) if val in known)

    def first(types: tuple[str, ...]) -> str | None:
        return next((values[typ][0] for typ in types if values.get(typ)), None)

    name_type = principal.get("name_typ")
    name = first(((name_type,) if isinstance(name_type, str) else ()) + _NAME_CLAIMS) or name_header
    return Caller(object_id=first(_OBJECT_ID_CLAIMS), app_id=first(_APP_ID_CLAIMS), name=name, roles=roles)


def encode_principal(*, object_id: str, roles: list[str], app_id: str | None = None, name: str | None = None) -> str:
    """A principal header as Easy Auth presents it (for the local host and tests)."""
    role_type = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
    claims = [{"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": object_id}]
    claims += [{"typ": role_type, "val": role} for role in roles]
    if app_id:
        claims.append({"typ": "appid", "val": app_id})
    if name:
        claims.append({"typ": "name", "val": name})
    principal = {"auth_typ": "aad", "name_typ": "name", "role_typ": role_type, "claims": claims}
    return base64.b64encode(json.dumps(principal).encode()).decode()


ANONYMOUS = Caller(name="anonymous")


def host_checks_keys(env: Mapping[str, str] | None = None) -> bool:
    """Whether routes are registered at the function level (keys checked by the host).

    Read when the app registers its functions, before any settings object exists. Only in `keys` mode; in
    `entra` mode Easy Auth is the gate and routes are anonymous at the host. A mode that is not valid keeps
    the keys on (fail closed) while the routes report the setting.
    """
    env = os.environ if env is None else env
    mode = (env.get("AUTH_MODE") or "entra").strip().lower() or "entra"
    return mode == "keys" or mode not in AUTH_MODES
