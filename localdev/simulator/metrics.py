"""Azure Monitor metrics of the simulated accounts, from the inference calls the data plane really served.

`GET {accountId}/providers/Microsoft.Insights/metrics` (api-version 2023-10-01 and the other GA versions) answers
`AzureOpenAIRequests` with `aggregation=Total`, `interval=P1D` and a `timespan`, split by `ModelDeploymentName`
when `$filter=ModelDeploymentName eq '*'` asks for it. As in Azure, only series with data in the timespan appear,
the largest first, and at most `top` of them (10 when `top` is not given). Under `/_sim/usage`, tests read the
counted calls and shift a deployment's calls (and its creation time) into the past.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .arm_tenants import check_token_tenant
from .config import AccountKey, account_key
from .errors import ArmError
from .identity import TokenRejected

METRICS_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.CognitiveServices"
    r"/accounts/(?P<account>[^/]+)/providers/Microsoft\.Insights/metrics/?$",
    re.IGNORECASE,
)
METRICS_API_VERSIONS = ("2018-01-01", "2019-07-01", "2021-05-01", "2023-10-01", "2024-02-01")
METRIC = "AzureOpenAIRequests"
DIMENSION = "ModelDeploymentName"
DEFAULT_TOP = 10
_FILTER = re.compile(r"^\s*ModelDeploymentName\s+eq\s+'\*'\s*$", re.IGNORECASE)


class UsageLog:
    """The moments each deployment was called, per account (wall clock, UTC)."""

    def __init__(self) -> None:
        self._calls: dict[tuple[AccountKey, str], list[datetime]] = defaultdict(list)

    def record(self, account: AccountKey, deployment: str, when: datetime | None = None) -> None:
        self._calls[(account, deployment.lower())].append(when or datetime.now(UTC))

    def shift(self, account: AccountKey, deployment: str, days: float) -> int:
        key = (account, deployment.lower())
        self._calls[key] = [when - timedelta(days=days) for when in self._calls.get(key, [])]
        return len(self._calls[key])

    def clear(self) -> None:
        self._calls.clear()

    def daily(self, account: AccountKey, start: datetime, end: datetime) -> dict[str, dict[date, int]]:
        found: dict[str, dict[date, int]] = {}
        for (key, name), calls in self._calls.items():
            if key != account:
                continue
            for when in calls:  # whole days, as Azure aligns a P1D query to the grain
                if start.date() <= when.date() <= end.date():
                    days = found.setdefault(name, {})
                    days[when.date()] = days.get(when.date(), 0) + 1
        return found

    def to_json(self) -> list[dict[str, Any]]:
        return [
            {"account": key[2], "deployment": name, "calls": len(calls), "lastCall": max(calls).isoformat()}
            for (key, name), calls in self._calls.items()
            if calls
        ]


def is_metrics_path(path: str) -> bool:
    return METRICS_PATH.match(path) is not None


class MetricsApi:
    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime

    async def handle(self, request: Request) -> Response:
        try:
            return self._handle(request)
        except ArmError as error:
            return error.to_response()

    def _handle(self, request: Request) -> Response:
        match = METRICS_PATH.match(request.url.path)
        assert match is not None
        try:
            claims = self._runtime.tokens.verify_for_arm(request.headers.get("authorization"))
        except TokenRejected as rejected:
            raise ArmError(401, rejected.code, rejected.message) from None
        check_token_tenant(self._runtime.config, claims, match["sub"])
        if request.method != "GET":
            raise ArmError(405, "MethodNotAllowed", f"The method '{request.method}' is not allowed; use GET.")
        query = request.query_params
        version = query.get("api-version")
        if version not in METRICS_API_VERSIONS:
            raise ArmError(400, "MissingApiVersionParameter" if not version else "InvalidApiVersionParameter",
                           f"Give one of the supported api-versions: {', '.join(METRICS_API_VERSIONS)}.")  # fmt: skip
        key = account_key(match["sub"], match["rg"], match["account"])
        account = self._runtime.state.accounts.get(key)
        if account is None:
            raise ArmError(404, "ResourceNotFound", f"The Resource '{match['account']}' was not found.")
        names = [name.strip() for name in (query.get("metricnames") or METRIC).split(",")]
        if [name.lower() for name in names] != [METRIC.lower()]:
            raise ArmError(400, "BadRequest", f"Failed to find metric configuration: {', '.join(names)}. Use {METRIC}.")
        if (query.get("interval") or "P1D").upper() != "P1D":
            raise ArmError(400, "BadRequest", "The simulator serves interval=P1D only.")
        start, end = _timespan(query.get("timespan"))
        by_dimension = query.get("$filter")
        if by_dimension is not None and not _FILTER.match(by_dimension):
            raise ArmError(400, "BadRequest", f"The simulator serves $filter={DIMENSION} eq '*' only.")
        top = _top(query.get("top"))
        daily = self._runtime.usage.daily(key, start, end)
        days = [start.date() + timedelta(days=offset) for offset in range((end.date() - start.date()).days + 1)]
        if by_dimension is None:
            merged: dict[date, int] = defaultdict(int)
            for counts in daily.values():
                for day, count in counts.items():
                    merged[day] += count
            series = [_series(None, merged, days)]
        else:
            ranked = sorted(daily.items(), key=lambda item: (-sum(item[1].values()), item[0]))[:top]
            series = [_series(name, counts, days) for name, counts in ranked]
        return JSONResponse(
            {
                "cost": len(days) * max(len(series), 1),
                "timespan": f"{_iso(start)}/{_iso(end)}",
                "interval": "P1D",
                "value": [
                    {
                        "id": f"{account.config.arm_id}/providers/Microsoft.Insights/metrics/{METRIC}",
                        "type": "Microsoft.Insights/metrics",
                        "name": {"value": METRIC, "localizedValue": "Azure OpenAI Requests"},
                        "displayDescription": "Number of calls made to the Azure OpenAI API over a period of time.",
                        "unit": "Count",
                        "timeseries": series,
                        "errorCode": "Success",
                    }
                ],
                "namespace": "Microsoft.CognitiveServices/accounts",
                "resourceregion": account.config.location,
            }
        )


def usage_routes(runtime: Any) -> list[BaseRoute]:
    """`GET /_sim/usage`: calls seen per deployment; `POST /_sim/usage/shift` with {"accountName", "deployment",
    "days"}: its calls and its creation time move that many days into the past."""

    async def usage(request: Request) -> Response:
        return JSONResponse({"value": runtime.usage.to_json()})

    async def shift(request: Request) -> Response:
        body = await request.json()
        days = float(body.get("days", 0))
        config = runtime.config.find_account_by_name(str(body.get("accountName", "")))
        if config is None or days <= 0:
            return JSONResponse({"error": {"code": "InvalidShift", "message": "Name an account and days > 0."}}, 400)
        name = str(body.get("deployment", ""))
        moved = runtime.usage.shift(config.key, name, days)
        deployment = runtime.state.accounts[config.key].find(name)
        if deployment is not None:
            deployment.created_at -= timedelta(days=days)
        return JSONResponse({"calls": moved, "deploymentFound": deployment is not None})

    return [Route("/usage", usage, methods=["GET"]), Route("/usage/shift", shift, methods=["POST"])]


def _series(name: str | None, counts: dict[date, int], days: list[date]) -> dict[str, Any]:
    metadata = (
        [] if name is None else [{"name": {"value": DIMENSION.lower(), "localizedValue": DIMENSION}, "value": name}]
    )
    data = [{"timeStamp": f"{day.isoformat()}T00:00:00Z", "total": float(counts.get(day, 0))} for day in days]
    return {"metadatavalues": metadata, "data": data}


def _timespan(raw: str | None) -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    if not raw:
        return now - timedelta(hours=1), now
    try:
        start_text, end_text = raw.split("/")
        start, end = (datetime.fromisoformat(text.replace("Z", "+00:00")) for text in (start_text, end_text))
    except ValueError:
        raise ArmError(400, "BadRequest", f"timespan '{raw}' is not start/end in ISO 8601.") from None
    if start.tzinfo is None or end.tzinfo is None or start >= end:
        raise ArmError(400, "BadRequest", f"timespan '{raw}' must be two UTC times, the first earlier.")
    return start, end


def _top(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_TOP
    if not raw.isdigit() or int(raw) < 1:
        raise ArmError(400, "BadRequest", "top must be a positive whole number.")
    return int(raw)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
