"""A deployment's lifecycle, kept in its ARM tags: when it expires (`expiresAt`) and whether it is kept alive.

PUT and PATCH bodies (HTTP and queue) take `"expiresAt": "<RFC 3339>"` or `"ttlHours": N` (one of them;
`"expiresAt": null` clears it) and `"keepAlive": true|false`. They are stored as the tags `expiresAt` (UTC,
RFC 3339, second precision) and `keepAlive` (`true`/`false`), which the sweep reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import Field

from .errors import ValidationError

EXPIRES_TAG = "expiresAt"
KEEPALIVE_TAG = "keepAlive"
MAX_TTL_HOURS = 24 * 366
TtlHours = Annotated[float, Field(gt=0, le=MAX_TTL_HOURS)]
LIFECYCLE_FIELDS = ("expiresAt", "ttlHours", "keepAlive")

TagChanges = dict[str, str | None]  # tag -> new value, None: remove the tag


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_time(value: str) -> datetime | None:
    """A tag's or a caller's RFC 3339 time as an aware datetime; None when it is not one."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def lifecycle_changes(fields: Mapping[str, Any], given: set[str], now: datetime | None = None) -> TagChanges:
    """The tag changes a request's lifecycle fields ask for (`given`: the fields it sent, null included)."""
    now = now or datetime.now(UTC)
    changes: TagChanges = {}
    if "expiresAt" in given and "ttlHours" in given:
        raise ValidationError(
            'Send either expiresAt or ttlHours, not both: {"ttlHours": 24} or {"expiresAt": "2026-12-31T18:00:00Z"}.',
            code="InvalidExpiry",
            target="ttlHours",
        )
    if "expiresAt" in given:
        raw = fields.get("expiresAt")
        if raw is None:
            changes[EXPIRES_TAG] = None
        else:
            when = raw if isinstance(raw, datetime) else parse_time(str(raw))
            if when is None or when.tzinfo is None:
                raise ValidationError(
                    "expiresAt must be an RFC 3339 date-time with a time zone, e.g. 2026-12-31T18:00:00Z.",
                    code="InvalidExpiry",
                    target="expiresAt",
                )
            if when <= now:
                raise ValidationError(
                    f"expiresAt {rfc3339(when)} is in the past; give a later time, or DELETE the deployment.",
                    code="InvalidExpiry",
                    target="expiresAt",
                )
            changes[EXPIRES_TAG] = rfc3339(when)
    hours = fields.get("ttlHours")
    if "ttlHours" in given and hours is not None:
        changes[EXPIRES_TAG] = rfc3339(now + timedelta(hours=float(hours)))
    keep = fields.get("keepAlive")
    if "keepAlive" in given and keep is not None:
        changes[KEEPALIVE_TAG] = "true" if keep else "false"
    return changes


def with_changes(tags: Mapping[str, str] | None, changes: TagChanges) -> dict[str, str] | None:
    """`tags` with the lifecycle changes applied (None when there were no tags and nothing is set)."""
    if not changes:
        return dict(tags) if tags is not None else None
    updated = dict(tags or {})
    for name, value in changes.items():
        if value is None:
            updated.pop(name, None)
        else:
            updated[name] = value
    return updated


def expires_at(tags: Mapping[str, str]) -> str | None:
    return tags.get(EXPIRES_TAG) or None


def keep_alive(tags: Mapping[str, str]) -> bool:
    return str(tags.get(KEEPALIVE_TAG, "")).strip().lower() == "true"


def expired(tags: Mapping[str, str], now: datetime) -> bool:
    """Past its `expiresAt` (a tag that is not a time never expires anything)."""
    raw = expires_at(tags)
    when = parse_time(raw) if raw else None
    return when is not None and when <= now
