"""Typed errors of the service layer, each carrying its HTTP status and the ARM/Azure OpenAI error shape.

Every error the service answers with is `{"error": {"code", "message", "target"}}`: the same shape ARM and
Azure OpenAI use, so a caller needs one error parser for this service and the services behind it.
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

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r})"


class ValidationError(ServiceError):
    """Bad input from the caller. Raised before anything is sent to Azure."""

    status = 400
    code = "InvalidRequest"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "PayloadTooLarge"


class NotFound(ServiceError):
    status = 404
    code = "NotFound"


class AccountNotFound(NotFound):
    code = "AccountNotFound"


class DeploymentNotFound(NotFound):
    code = "DeploymentNotFound"


class ConflictError(ServiceError):
    """ARM kept refusing because another operation runs on the account; the caller may retry later."""

    status = 409
    code = "RequestConflict"


class ConfigurationError(ServiceError):
    """An app setting is missing or malformed: the operator, not the caller, has to fix it."""

    status = 500
    code = "ConfigurationError"


class IdentityUnavailable(ServiceError):
    """No token could be had from the managed identity (or whatever DefaultAzureCredential found)."""

    status = 503
    code = "IdentityUnavailable"


class UpstreamError(ServiceError):
    """An error answered by ARM, passed on with ARM's own status, code and message."""

    status = 502
    code = "UpstreamError"


class Unauthorized(ServiceError):
    status = 401
    code = "Unauthorized"


class Forbidden(ServiceError):
    status = 403
    code = "Forbidden"


class AuthenticationNotConfigured(ServiceError):
    """AUTH_MODE=entra without App Service Authentication in front: the caller cannot be trusted."""

    status = 503
    code = "AuthenticationNotConfigured"


class AuditUnavailable(ServiceError):
    """The audit record could not be written, so the change was not made."""

    status = 503
    code = "AuditUnavailable"


class UpstreamUnavailable(ServiceError):
    """ARM could not be reached, or kept failing after bounded retries."""

    status = 503
    code = "UpstreamUnavailable"
