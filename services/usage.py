"""GET /usage: the usage ledger summed per caller, deployment or account over a period, for chargeback.

`from` and `to` are RFC 3339 times (`from` defaults to the start of the current UTC month, `to` to now; at most
366 days apart); `groupBy` is `caller` (the default), `deployment` or `account`. The query reads only the
period's partitions (partition keys start with the row's UTC hour) and only the columns it sums.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from .errors import UsageUnavailable, ValidationError

GROUPS = ("caller", "deployment", "account")
MAX_PERIOD = timedelta(days=366)
_SUMMED = ("promptTokens", "completionTokens", "totalTokens")


def _when(raw: str | None, name: str, default: datetime) -> datetime:
    if raw is None:
        return default
    try:
        when = datetime.fromisoformat(raw.strip().upper().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"{name} must be an RFC 3339 date-time, e.g. 2026-11-01T00:00:00Z.",
            code="InvalidQueryParameter",
            target=name,
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def usage_filter(start: datetime, end: datetime) -> tuple[str, dict[str, Any]]:
    """The table query of a period: its partitions' key range, then the rows' own time."""
    last_hour = (end - timedelta(microseconds=1)).astimezone(UTC)
    parameters = {
        "low": f"{start.astimezone(UTC):%Y%m%d%H}",
        "high": f"{last_hour:%Y%m%d%H}~",  # '~' sorts after every shard suffix of that hour
        "start": start.astimezone(UTC),
        "end": end.astimezone(UTC),
    }
    text = "PartitionKey ge @low and PartitionKey lt @high and time ge @start and time lt @end"
    return text, parameters


def query_usage(
    client: Any,
    *,
    start: str | None,
    end: str | None,
    group_by: str | None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """{"value": [{<groupBy>: ..., "requests", "promptTokens", "completionTokens", "totalTokens"}, ...]}, largest
    total first."""
    key = "caller" if group_by is None else group_by.strip()
    if key not in GROUPS:
        raise ValidationError(
            f"groupBy must be one of {', '.join(GROUPS)}; got '{key[:40]}'.",
            code="InvalidQueryParameter",
            target="groupBy",
        )
    now = now or datetime.now(UTC)
    first = _when(start, "from", now.replace(day=1, hour=0, minute=0, second=0, microsecond=0))
    last = _when(end, "to", now)
    if last <= first or last - first > MAX_PERIOD:
        raise ValidationError(
            "from must be before to, and the period at most 366 days.", code="InvalidQueryParameter", target="from"
        )
    if client is None:
        raise UsageUnavailable(
            "The usage ledger has no storage: set AzureWebJobsStorage (UseDevelopmentStorage=true with Azurite "
            "locally) or AzureWebJobsStorage__tableServiceUri with AzureWebJobsStorage__credential=managedidentity."
        )
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    text, parameters = usage_filter(first, last)
    totals: dict[str, dict[str, Any]] = {}
    try:
        for row in client.query_entities(text, parameters=parameters, select=[key, *_SUMMED]):
            name = str(row.get(key) or "-")
            entry = totals.setdefault(
                name, {key: name, "requests": 0, "promptTokens": 0, "completionTokens": 0, "totalTokens": 0}
            )
            entry["requests"] += 1
            for column in _SUMMED:
                entry[column] += int(row.get(column) or 0)
    except ResourceNotFoundError:
        return {"value": []}  # nothing was ever recorded
    except AzureError as error:
        raise UsageUnavailable(
            f"The usage ledger could not be read ({type(error).__name__}). Check AzureWebJobsStorage and the app's "
            "Storage Table Data Contributor role.",
            headers={"Retry-After": "30"},
        ) from None
    return {"value": sorted(totals.values(), key=lambda entry: (-entry["totalTokens"], entry[key]))}
