"""ARM's refusals as the service's typed errors: the class follows ARM's status (a 404 is a `NotFound`, a 429
a `Throttled`), the code and message stay ARM's, with a hint where the fix is the operator's, and ARM's
correlation id travels along for the caller's support case."""

from __future__ import annotations

from .accounts import Account
from .arm import ArmResponse
from .errors import error_for_status
from .tenants import arm_refused

OPERATOR_ROLE = "Cognitive Services OpenAI Contributor"
_MISSING_RESOURCE_CODES = ("ResourceNotFound", "ResourceGroupNotFound", "SubscriptionNotFound")


def raise_for_status(response: ArmResponse, account: Account, *, linked: tuple[str, str] | None = None) -> None:
    """Nothing for a success; otherwise the typed error for ARM's answer about `account`. `linked` is the
    (tenant, ARM id) of a source account in another tenant the call named: ARM's refusal of the rights there is
    `CrossTenantAuthorizationFailed`."""
    if response.status < 400:
        return
    error = response.error()
    code = str(error.get("code") or "UpstreamError")
    if linked is not None and response.status == 403 and code == "LinkedAuthorizationFailed":
        refused = arm_refused([linked[0]], code, role_scope=linked[1])
        refused.correlation_id = response.correlation_id
        raise refused
    message = str(error.get("message") or f"ARM answered HTTP {response.status}.")
    if response.status == 404 and code in _MISSING_RESOURCE_CODES:
        message = (
            f"Account alias '{account.alias}' points at {account.arm_id}, which ARM did not find: {message} "
            "Check AZURE_OPENAI_ACCOUNTS."
        )
    elif response.status == 403:
        message = f"{message} Grant the Function App's identity the '{OPERATOR_ROLE}' role on {account.arm_id}."
    headers = {}
    if response.headers.get("Retry-After"):
        headers["Retry-After"] = response.headers["Retry-After"]
    target = error.get("target")
    raise error_for_status(
        response.status,
        message,
        code=code,
        target=target if isinstance(target, str) else None,
        headers=headers,
        correlation_id=response.correlation_id,
    )
