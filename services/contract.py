"""The published API contract: the OpenAPI document kept in the repo and served at /api/openapi.json."""

from __future__ import annotations

import functools
from pathlib import Path

from .errors import ConfigurationError
from .results import ProxyResponse

DOCUMENT = Path(__file__).with_name("openapi.json")


@functools.cache
def _document_bytes() -> bytes:
    try:
        return DOCUMENT.read_bytes()
    except OSError:
        raise ConfigurationError(f"The API document {DOCUMENT.name} is missing from the deployed package.") from None


async def openapi_document() -> ProxyResponse:
    return ProxyResponse(200, {"content-type": "application/json"}, body=_document_bytes())
