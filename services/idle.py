"""What sits idle: deployments with no call in the last N days, from Azure Monitor metrics, one call per account.

Azure bills a deployment by the hour whether or not it is called, and removes a fine-tuned deployment that had
no call for 15 days. The account's `AzureOpenAIRequests` metric, split by `ModelDeploymentName`, one point per
day over 30 days, says when each deployment was last called:

    GET {accountId}/providers/Microsoft.Insights/metrics?metricnames=AzureOpenAIRequests&aggregation=Total
        &interval=P1D&timespan=<30 days>&$filter=ModelDeploymentName eq '*'&top=<above 10>&api-version=...

`top` defaults to 10 series in Azure Monitor: without raising it, deployments beyond the tenth go missing.
The identity needs Monitoring Reader (or any role with Microsoft.Insights/metrics/read) on the account.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from .arm import ArmClient
from .arm_errors import raise_for_status
from .deployment_state import CurrentDeployment
from .errors import Forbidden
from .lifecycle_tags import expires_at, keep_alive, parse_time
from .settings import Account, Settings
from .web import parse_int

METRIC = "AzureOpenAIRequests"
DIMENSION = "ModelDeploymentName"
TIMESPAN_DAYS = 30
AUTO_DELETE_DAYS = 15  # Azure removes a fine-tuned deployment with no call for this long
MIN_TOP = 50
MONITORING_ROLE = "Monitoring Reader"


@dataclass(frozen=True)
class Usage:
    """A deployment as the idle report sees it: ARM's resource and its last day with a call."""

    resource: dict[str, Any]
    last_used: date | None

    @property
    def current(self) -> CurrentDeployment:
        return CurrentDeployment(self.resource)

    def idle_days(self, today: date) -> int:
        """Whole days since the last call; since creation when never called (at least the metrics' 30 days)."""
        if self.last_used is not None:
            return max(0, (today - self.last_used).days)
        created = parse_time(str((self.resource.get("systemData") or {}).get("createdAt") or ""))
        return max(0, (today - created.date()).days) if created else TIMESPAN_DAYS


def is_fine_tuned(model: str) -> bool:
    return ".ft-" in model or model.startswith(("ft:", "ftchkpt-")) or ":ckpt-" in model


def account_usage(
    settings: Settings, arm: ArmClient, account: Account, *, now: datetime, request_id: str | None = None
) -> list[Usage]:
    """Every deployment of the account with its last day of use: one ARM listing, one metrics call."""
    resources = list_resources(arm, account, request_id=request_id)
    if not resources:
        return []
    last = last_use_by_deployment(settings, arm, account, len(resources), now=now, request_id=request_id)
    return [Usage(resource, last.get(str(resource.get("name", "")).lower())) for resource in resources]


def list_resources(arm: ArmClient, account: Account, *, request_id: str | None = None) -> list[dict[str, Any]]:
    """The account's deployments as ARM lists them (every page)."""
    resources: list[dict[str, Any]] = []
    for page in arm.pages(arm.url(f"{account.arm_id}/deployments"), request_id=request_id):
        raise_for_status(page, account)
        resources.extend(item for item in page.body.get("value", []) if isinstance(item, dict))
    return resources


def metrics_url(settings: Settings, arm: ArmClient, account: Account, top: int, now: datetime) -> str:
    start = now - timedelta(days=TIMESPAN_DAYS)
    query = {
        "metricnames": METRIC,
        "aggregation": "Total",
        "interval": "P1D",
        "timespan": f"{_iso(start)}/{_iso(now)}",
        "$filter": f"{DIMENSION} eq '*'",
        "top": str(max(MIN_TOP, top)),
        "api-version": settings.metrics_api_version,
    }
    return f"{arm.endpoint}{account.arm_id}/providers/Microsoft.Insights/metrics?{urlencode(query, quote_via=quote)}"


def last_use_by_deployment(
    settings: Settings, arm: ArmClient, account: Account, count: int, *, now: datetime, request_id: str | None
) -> dict[str, date]:
    """Deployment name (lower case) -> the last day with at least one request, from one metrics call."""
    response = arm.send("GET", metrics_url(settings, arm, account, count, now), request_id=request_id)
    if response.status == 403:
        raise Forbidden(
            f"Azure Monitor refused the metrics of account '{account.alias}'. Grant the Function App's identity "
            f"the '{MONITORING_ROLE}' role on {account.arm_id}.",
            code="MetricsForbidden",
            correlation_id=response.correlation_id,
        )
    raise_for_status(response, account)
    return parse_last_use(response.body)


def parse_last_use(body: Any) -> dict[str, date]:
    found: dict[str, date] = {}
    metrics = body.get("value", []) if isinstance(body, dict) else []
    for metric in metrics if isinstance(metrics, list) else []:
        for series in metric.get("timeseries") or []:
            name = _dimension(series.get("metadatavalues") or [])
            if name is None:
                continue
            for point in series.get("data") or []:
                when = parse_time(str(point.get("timeStamp") or ""))
                if when is not None and (point.get("total") or 0) > 0:
                    day = when.astimezone(UTC).date()
                    if name not in found or day > found[name]:
                        found[name] = day
    return found


def idle_row(usage: Usage, account: Account, today: date) -> dict[str, Any]:
    current = usage.current
    idle = usage.idle_days(today)
    return {
        "name": usage.resource.get("name"),
        "account": account.alias,
        "model": current.model_name,
        "lastUsed": usage.last_used.isoformat() if usage.last_used else None,
        "idleDays": idle,
        "autoDeleteInDays": max(0, AUTO_DELETE_DAYS - idle) if is_fine_tuned(current.model_name) else None,
        "expiresAt": expires_at(current.tags),
        "keepAlive": keep_alive(current.tags),
    }


def idle_report(
    settings: Settings,
    arm_for: Callable[[Account], ArmClient],
    alias: str | None = None,
    days: str | int | None = None,
    *,
    now: datetime | None = None,
    request_id: str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Account alias -> rows of the deployments with no call in the last `days` (default 7) days; every
    configured account when no alias is given."""
    wanted = days if isinstance(days, int) else parse_int(days, "days", 0, TIMESPAN_DAYS, 7)
    now = now or datetime.now(UTC)
    accounts: Iterable[Account] = [settings.account(alias)] if alias else settings.accounts.values()
    report: dict[str, list[dict[str, Any]]] = {}
    for account in accounts:
        usages = account_usage(settings, arm_for(account), account, now=now, request_id=request_id)
        rows = [idle_row(usage, account, now.date()) for usage in usages]
        report[account.alias] = sorted(
            (row for row in rows if row["idleDays"] >= wanted), key=lambda row: (-row["idleDays"], row["name"])
        )
    return report


def idle_view(report: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """GET /deployments/idle: every account's rows in one list."""
    return {"value": [row for rows in report.values() for row in rows]}


def _dimension(values: list[Any]) -> str | None:
    for item in values:
        name = item.get("name") if isinstance(item, dict) else None
        label = name.get("value") if isinstance(name, dict) else name
        if isinstance(label, str) and label.lower() == DIMENSION.lower():
            return str(item.get("value", "")).lower()
    return None


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
