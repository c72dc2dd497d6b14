"""A message of the deployment requests queue, read and checked: what to do, to which deployment, on whose behalf.

    {"action": "deploy" | "scale" | "delete", "name": "...", "account": "<alias>" | "project": "<alias>",
     "body": {...}, "requestId": "...", "requestedBy": "..."}

The text may be plain JSON (what the azure-storage-queue client sends by default) or base64 of it (what the
Functions host writes by default); both are read. An Event Grid event (Event Grid or CloudEvents schema)
delivered to the queue is read as its `data`, with the event's `id` as the default `requestId`. Anything wrong
with a message is `Rejected`: answered at once on the results queue, never retried, since the same message would
fail the same way again.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from .deployment_requests import check_name
from .errors import ServiceError

ACTIONS = ("deploy", "scale", "delete")
TARGET_KINDS = ("account", "project")
_KEYS = frozenset({"action", "name", "account", "project", "body", "requestId", "requestedBy"})
_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
MAX_REQUESTED_BY = 256
EXAMPLE = (
    '{"action": "deploy", "name": "support-bot", "account": "main", "requestId": "run-42", '
    '"body": {"model": "gpt-4o-mini-2024-07-18.ft-0123abcd", "sku": {"name": "Standard", "capacity": 1}}}'
)


@dataclass(frozen=True)
class QueueRequest:
    action: str
    name: str
    kind: str  # "account" or "project"
    alias: str | None  # None: the default, as on the HTTP routes
    body: dict[str, Any] | None
    request_id: str
    requested_by: str | None


class Rejected(Exception):
    """A message that cannot be acted on; `fields` holds what could be read of it, for the result."""

    def __init__(self, code: str, message: str, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields or {}


def decode(text: str | bytes) -> Any:
    """The JSON value of a message, plain or base64-encoded; Rejected when it is neither."""
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    try:
        return json.loads(raw)
    except ValueError:
        pass
    try:
        return json.loads(base64.b64decode(raw.strip(), validate=True).decode("utf-8"))
    except (binascii.Error, ValueError):
        raise Rejected(
            "InvalidMessage", f"The message is not JSON, nor base64 of JSON. Send for example {EXAMPLE}"
        ) from None


def _is_event(data: Any) -> bool:
    """An Event Grid event (Event Grid or CloudEvents schema) rather than a bare request."""
    return isinstance(data, dict) and "data" in data and ("eventType" in data or "specversion" in data)


def parse(text: str | bytes, message_id: str) -> QueueRequest:
    """The request a message asks for; Rejected naming the first problem."""
    data = decode(text)
    if _is_event(data):  # an Event Grid delivery: the request is the event's data, the event id its default key
        message_id = str(data.get("id") or message_id)
        data = data.get("data")
    if not isinstance(data, dict):
        raise Rejected("InvalidMessage", f"The message must be a JSON object, e.g. {EXAMPLE}")
    request_id = data.get("requestId", message_id)
    seen = {"requestId": request_id if isinstance(request_id, str) else message_id}
    seen.update({key: data[key] for key in ("action", "name") if isinstance(data.get(key), str)})
    for key in TARGET_KINDS:
        if isinstance(data.get(key), str):
            seen[key] = data[key]

    def refuse(message: str, code: str = "InvalidMessage") -> Rejected:
        return Rejected(code, message, seen)

    if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id):
        seen["requestId"] = message_id
        raise refuse("requestId must be 1-128 letters, digits, '.', '_', ':' or '-', starting with a letter or digit.")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise refuse(f"Unknown field(s) {', '.join(unknown)}; a message has {', '.join(sorted(_KEYS))}.")
    action = data.get("action")
    if action not in ACTIONS:
        raise refuse(f"action must be one of {', '.join(ACTIONS)}; got {json.dumps(action)[:40]}.", "UnknownAction")
    name = data.get("name")
    if not isinstance(name, str):
        raise refuse("name (the deployment's name) is required, a string.")
    try:
        check_name(name)
    except ServiceError as error:
        raise refuse(error.message, error.code) from None
    if "account" in data and "project" in data:
        raise refuse("Give account or project, not both.")
    kind = "project" if "project" in data else "account"
    alias = data.get(kind)
    if alias is not None and not isinstance(alias, str):
        raise refuse(f"{kind} must be a string (an alias of the service's settings).")
    body = data.get("body")
    if action == "delete" and body not in (None, {}):
        raise refuse("A delete takes no body.")
    if action != "delete" and not isinstance(body, dict):
        raise refuse(f"body is required for {action}: the JSON object the matching HTTP route takes.")
    requested_by = data.get("requestedBy")
    if requested_by is not None and (not isinstance(requested_by, str) or len(requested_by) > MAX_REQUESTED_BY):
        raise refuse(f"requestedBy must be text of at most {MAX_REQUESTED_BY} characters.")
    return QueueRequest(action, name, kind, alias or None, body or None, request_id, requested_by)
