"""Framework-free pieces of the HTTP boundary: request ids, JSON bodies, query values, server delays.

`function_app.py` reads the request and hands these raw values over; everything that can be wrong with
them is judged here, so it is unit-testable without a host.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from .errors import PayloadTooLarge, UnsupportedMediaType, ValidationError

MAX_JSON_BODY_BYTES = 64 * 1024
# A request body as the routes read it: bytes, or one buffer for a large raw body (an image).
RawBody = bytes | bytearray
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")


def request_id_from(headers: Mapping[str, str]) -> str:
    """The caller's `x-ms-client-request-id` when it is a sane token, otherwise a new UUID."""
    given = headers.get("x-ms-client-request-id")
    if given and _SAFE_REQUEST_ID.fullmatch(given):
        return given
    return str(uuid.uuid4())


def parse_json_object(raw: RawBody, *, example: str, max_bytes: int = MAX_JSON_BODY_BYTES) -> dict[str, Any]:
    """A request body that must be one JSON object; anything else is a 4xx saying what to send."""
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"The request body is over the limit of {max_bytes} bytes.")
    if not raw.strip():
        raise ValidationError(
            f"The request body is empty. Send a JSON object, for example {example}.", code="MissingRequestBody"
        )
    try:
        data = json.loads(raw)
    except UnicodeDecodeError:
        raise ValidationError("The request body is not UTF-8 text.", code="InvalidJson") from None
    except json.JSONDecodeError as error:
        raise ValidationError(
            f"The request body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}.",
            code="InvalidJson",
        ) from None
    except RecursionError:
        raise ValidationError("The request body nests JSON too deeply.", code="InvalidJson") from None
    if not isinstance(data, dict):
        raise ValidationError(
            f"The request body must be a JSON object, for example {example}; got {type(data).__name__}.",
            code="InvalidJson",
        )
    return data


def check_json_content_type(content_type: str | None) -> None:
    """A JSON route refuses a body declared as something else (e.g. curl -d's form encoding); none is fine."""
    if not content_type:
        return
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        return
    raise UnsupportedMediaType(
        f"Content-Type '{media_type[:60]}' is not JSON: send the body as application/json "
        "(curl: -H 'Content-Type: application/json')."
    )


def parse_int(raw: str | None, name: str, low: int, high: int, default: int, hint: str = "") -> int:
    """A whole-number query value in [low, high]; ASCII digits only (str.isdigit also takes '²')."""
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise ValidationError(
            f"{name} must be a whole number from {low} to {high}; got '{raw[:20]}'.{hint}",
            code="InvalidQueryParameter",
            target=name,
        )
    return int(raw)


def parse_wait(raw: str | None, maximum: int) -> int:
    """`?wait=N`: whole seconds to wait for a terminal state, 0..maximum (default 0: answer at once)."""
    return parse_int(raw, "wait", 0, maximum, 0, " Longer operations answer 202 with a Location to poll.")


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The server-requested delay: `retry-after-ms`, `x-ms-retry-after-ms`, or `Retry-After` (seconds or date)."""
    lowered = {key.lower(): value for key, value in headers.items()}
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        raw = lowered.get(name)
        if raw is not None:
            try:
                return max(float(raw) / 1000.0, 0.0)
            except ValueError:
                pass
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)
