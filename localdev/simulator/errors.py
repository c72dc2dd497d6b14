"""Error bodies in the two shapes the simulated services use: ARM and the App Service identity endpoint."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse

# Default ARM error codes for fault statuses that do not name one.
_CODE_BY_STATUS = {
    400: "BadRequest",
    401: "AuthenticationFailed",
    403: "AuthorizationFailed",
    404: "NotFound",
    408: "RequestTimeout",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def default_error_code(status: int) -> str:
    return _CODE_BY_STATUS.get(status, f"HttpStatus{status}")


@dataclass
class ArmError(Exception):
    """Raised anywhere in ARM handling; turned into `{"error": {...}}` with the given status."""

    status: int
    code: str
    message: str
    target: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"

    def body(self) -> dict[str, Any]:
        return arm_error_body(self.code, self.message, self.target)

    def to_response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=dict(self.headers))


def arm_error_body(code: str, message: str, target: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if target is not None:
        error["target"] = target
    error["details"] = []
    return {"error": error}


def identity_error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The App Service managed-identity endpoint answers errors as `{"statusCode", "message"}`."""
    return JSONResponse({"statusCode": status, "message": message}, status_code=status, headers=headers)
