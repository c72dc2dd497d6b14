"""Typed errors of the service layer, each carrying its HTTP status and the ARM/Azure OpenAI error shape.

Every error the service answers with is `{"error": {"code", "message", "target"}}`: the same shape ARM and
Azure OpenAI use, so a caller needs one error parser for this service and the services behind it.

The classes follow the status they answer with (`BadRequest`, `NotFound`, `Conflict`, `Throttled`, ...), so
code can `except NotFound` whatever produced it. `error_for_status` picks the class for an error that an
upstream (ARM) answered, keeping the upstream's own code and message.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """An error that becomes an HTTP response: status, PascalCase code, a message saying how to fix it."""

    status: int = 500
    code: str = "InternalServerError"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        target: str | None = None,
        headers: dict[str, str] | None = None,
        correlation_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.correlation_id = correlation_id  # ARM's x-ms-correlation-request-id, when ARM was involved
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.target = target
        self.headers = dict(headers or {})

    def to_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target is not None:
            error["target"] = self.target
        return {"error": error}

    def response_headers(self) -> dict[str, str]:
        """Headers the answer carries: the error's own, and ARM's correlation id when ARM was involved."""
        headers = dict(self.headers)
        if self.correlation_id:
            headers["x-ms-correlation-request-id"] = self.correlation_id
        return headers

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r})"


# 4xx: the caller can fix it.


class BadRequest(ServiceError):
    status = 400
    code = "InvalidRequest"


class ValidationError(BadRequest):
    """Bad input from the caller. Raised before anything is sent to Azure."""


class Unauthorized(ServiceError):
    status = 401
    code = "Unauthorized"


class Forbidden(ServiceError):
    status = 403
    code = "Forbidden"


class NotFound(ServiceError):
    status = 404
    code = "NotFound"


class AccountNotFound(NotFound):
    code = "AccountNotFound"


class DeploymentNotFound(NotFound):
    code = "DeploymentNotFound"


class Conflict(ServiceError):
    status = 409
    code = "Conflict"


# Foundry serverless endpoints.


class ProjectNotFound(NotFound):
    code = "ProjectNotFound"


class EndpointNotFound(NotFound):
    code = "EndpointNotFound"


class EndpointNotReady(Conflict):
    """The serverless endpoint exists but is not Online (creating, suspended, failed ...)."""

    code = "EndpointNotReady"


class EndpointNotAllowed(Forbidden):
    """The endpoint is not in the project's inferenceEndpoints."""

    code = "EndpointNotAllowed"


class ModelChangeNotSupported(BadRequest):
    """A serverless endpoint's model cannot change: delete the endpoint, then create it again."""

    code = "ModelChangeNotSupported"


class ConflictError(Conflict):
    """ARM kept refusing because another operation runs on the account; the caller may retry later."""

    code = "RequestConflict"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "PayloadTooLarge"


class UnsupportedMediaType(ServiceError):
    status = 415
    code = "UnsupportedMediaType"


class Throttled(ServiceError):
    """Too many requests: the answer carries Retry-After when the upstream gave one."""

    status = 429
    code = "TooManyRequests"


class RateLimitExceeded(Throttled):
    """The caller is over a per-minute limit of INFERENCE_LIMITS; Retry-After says when enough frees up."""

    code = "RateLimitExceeded"


class QuotaExceeded(Forbidden):
    """The caller's token quota for the period is used up; the message names the period's end."""

    code = "QuotaExceeded"


class NoMemberAvailable(Throttled):
    """Every member of a failover group is throttled or failing; Retry-After is the soonest one back."""

    code = "NoMemberAvailable"


# 5xx: the operator or the platform has to act, or the caller retries later.


class ConfigurationError(ServiceError):
    """An app setting is missing or malformed: the operator, not the caller, has to fix it."""

    status = 500
    code = "ConfigurationError"


class UpstreamError(ServiceError):
    """An error answered by ARM or Azure OpenAI, passed on with the upstream's own status, code and message
    (status 502 when the upstream's answer itself was unusable)."""

    status = 502
    code = "UpstreamError"


class IdentityUnavailable(ServiceError):
    """No token could be had from the managed identity (or whatever DefaultAzureCredential found)."""

    status = 503
    code = "IdentityUnavailable"


class AuthenticationNotConfigured(ServiceError):
    """AUTH_MODE=entra without App Service Authentication in front: the caller cannot be trusted."""

    status = 503
    code = "AuthenticationNotConfigured"


class AuditUnavailable(ServiceError):
    """The audit record could not be written, so the change was not made."""

    status = 503
    code = "AuditUnavailable"


class LimitStoreUnavailable(ServiceError):
    """LIMITS_WHEN_STORE_DOWN=closed and the limits' store (Redis) cannot be reached: nothing is sent upstream."""

    status = 503
    code = "LimitStoreUnavailable"


class UsageUnavailable(ServiceError):
    """The usage ledger cannot be read (no storage configured, or Table Storage failing)."""

    status = 503
    code = "UsageUnavailable"


class UpstreamUnavailable(ServiceError):
    """ARM or Azure OpenAI could not be reached, or kept failing after bounded retries."""

    status = 503
    code = "UpstreamUnavailable"


class GatewayTimeout(ServiceError):
    status = 504
    code = "GatewayTimeout"


class RelayedError(ServiceError):
    """An upstream data-plane error relayed to the caller exactly as Azure sent it (body and headers)."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        super().__init__(f"Azure OpenAI answered HTTP {status}.", status=status, code="UpstreamError")
        self.body = body
        self.relayed_headers = headers


_BY_STATUS: dict[int, type[ServiceError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    429: Throttled,
    503: UpstreamUnavailable,
    504: GatewayTimeout,
}


def error_for_status(status: int, message: str, **kwargs: Any) -> ServiceError:
    """The typed error for an upstream `status`, keeping its own code: a 404 is a `NotFound`, a 429 a
    `Throttled`, any other 5xx an `UpstreamError` with that status."""
    kind = _BY_STATUS.get(status, UpstreamError if status >= 500 else BadRequest)
    return kind(message, status=status, **kwargs)


class StateUnavailable(ServiceError):
    """The Table Storage where queued requests and deploy intents are tracked could not be reached."""

    status = 503
    code = "StateUnavailable"
