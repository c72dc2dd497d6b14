"""Errors of the Azure OpenAI data plane, in the shapes the real service answers with.

The service mixes shapes: its gateway answers `{"error": {"code", "message"}}` (often with the bare
status as the code), while the inference engine answers OpenAI's `{"error": {"message", "type",
"param", "code"}}`. Each constructor below uses the shape real Azure uses for that case.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse

CONTENT_FILTER_MESSAGE = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
    "Please modify your prompt and retry. To learn more about our content filtering policies please read "
    "our documentation: https://go.microsoft.com/fwlink/?linkid=2198766"
)
DEPLOYMENT_NOT_FOUND_MESSAGE = (
    "The API deployment for this resource does not exist. If you created the deployment within the last "
    "5 minutes, please wait a moment and try again."
)
MISSING_AUTH_MESSAGE = (
    "Access denied due to missing subscription key or proper Authorization header. Make sure to provide a "
    "valid key for an active subscription and use a correct regional API endpoint for your resource."
)
KEY_AUTH_DISABLED_MESSAGE = "Key based authentication is disabled for this resource."


@dataclass
class DataPlaneError(Exception):
    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status}: {self.body}"

    def to_response(self) -> JSONResponse:
        return JSONResponse(dict(self.body), status_code=self.status, headers=dict(self.headers))


def gateway_error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> DataPlaneError:
    return DataPlaneError(status, {"error": {"code": code, "message": message}}, headers or {})


def resource_not_found() -> DataPlaneError:
    """Unknown account, unknown path, or no api-version: the gateway finds no API to route to."""
    return gateway_error(404, "404", "Resource not found")


def access_denied(message: str) -> DataPlaneError:
    return gateway_error(401, "401", message, {"WWW-Authenticate": "Bearer"})


def deployment_not_found() -> DataPlaneError:
    return gateway_error(404, "DeploymentNotFound", DEPLOYMENT_NOT_FOUND_MESSAGE)


def invalid_request(message: str, param: str | None) -> DataPlaneError:
    """A request the model engine refuses, in OpenAI's error shape."""
    return DataPlaneError(
        400, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}
    )


def safe_filter_results() -> dict[str, Any]:
    """Per-category results of a prompt or completion the content filter let through."""
    return {
        "hate": {"filtered": False, "severity": "safe"},
        "jailbreak": {"filtered": False, "detected": False},
        "self_harm": {"filtered": False, "severity": "safe"},
        "sexual": {"filtered": False, "severity": "safe"},
        "violence": {"filtered": False, "severity": "safe"},
    }


def content_filtered() -> DataPlaneError:
    """The prompt was blocked. On the wire Azure uses `innererror` and `content_filter_result`
    (singular), although its OpenAPI spec names them `inner_error` and `content_filter_results`."""
    results = safe_filter_results()
    results["jailbreak"] = {"filtered": True, "detected": True}
    return DataPlaneError(
        400,
        {
            "error": {
                "message": CONTENT_FILTER_MESSAGE,
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
                "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": results},
            }
        },
    )


def job_not_found(job_id: str) -> DataPlaneError:
    """The authoring API has its own shape: camel-case codes from its ErrorCode enum."""
    return gateway_error(404, "notFound", f"Fine-tuning job with id '{job_id}' was not found.")


def rate_limit_message(operation: str, api_version: str, retry_after_seconds: float | None) -> str:
    seconds = max(1, math.ceil(retry_after_seconds or 1))  # the service speaks in whole seconds
    unit = "second" if seconds == 1 else "seconds"
    return (
        f"Requests to the {operation} Operation under Azure OpenAI API version {api_version} have exceeded "
        f"token rate limit of your current OpenAI S0 pricing tier. Please retry after {seconds} {unit}."
    )
