"""GET /overview: every deployment (and serverless endpoint) of every configured account and project, in one
document, with its estimated hosting cost, expiry, keep-alive and idle figures, totals, and who is asking.

The lists are fetched from all accounts at once (each blocking ARM walk in a worker thread), so the answer
takes about as long as the slowest account, not their sum. An account that fails is reported in `errors`
beside the others; it never fails the whole answer.

What the overview shows comes from `Sources` (`sources_of`): list sources (one fetch per account or project
alias), idle reports and deploy intents, each an async callable. A new kind of row or figure is one more
entry there; nothing else changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from .errors import ServiceError
from .idle import Usage, idle_row, last_use_by_deployment, list_resources
from .prices import PriceTable, estimate, estimate_serverless

if TYPE_CHECKING:
    from .auth import Caller
    from .context import AppContext

log = logging.getLogger(__name__)

Row = dict[str, Any]
Scope = Literal["account", "project"]
Fetch = Callable[[str], Awaitable[list[Row]]]  # an alias -> the service's views of what it holds
IdleReport = Callable[[], Awaitable[list[Row]]]  # rows {name, account, lastUsed, idleDays, autoDeleteInDays, ...}
Intents = Callable[[], Awaitable[list[Row]]]  # pending deploy intents {jobId, status, deployment}

# Deployment tags the service reads: when it expires (UTC RFC 3339) and whether it is kept alive ("true").
EXPIRES_TAG, KEEP_ALIVE_TAG = "expiresAt", "keepAlive"
IDLE_FIELDS = ("lastUsed", "idleDays", "autoDeleteInDays")
IDLE_MARK_DAYS = 1  # a row idle this many days or more while it costs money per hour is marked
# The metrics call runs beside the listing, before the number of deployments is known: ask for this many series
# (Azure Monitor returns only deployments that had calls, the busiest first).
MAX_SERIES = 1000


@dataclass(frozen=True)
class Source:
    """One kind of row: its `kind`, whether its aliases are accounts or projects, and how to list one alias."""

    kind: str
    scope: Scope
    aliases: Sequence[str]
    fetch: Fetch


@dataclass(frozen=True)
class Sources:
    lists: Sequence[Source]
    idle: Sequence[tuple[str, IdleReport]] = ()  # (account alias, its idle report)
    intents: Sequence[Intents] = ()


def sources_of(app: AppContext, request_id: str | None) -> Sources:
    """What the overview is made of in this app: the deployments of every configured account and the serverless
    endpoints of every configured Foundry project, each account's idle figures (Azure Monitor) and the deploy
    intents still open."""
    settings = app.settings

    # Each account is listed once: its rows and its idle figures come from the same listing, and the one
    # metrics call runs beside it, so an account costs about its listing, not listing plus metrics.
    listings: dict[str, asyncio.Future[list[Row]]] = {}

    def listing(alias: str) -> asyncio.Future[list[Row]]:
        if alias not in listings:
            account = settings.account(alias)
            listings[alias] = asyncio.ensure_future(
                app.run_blocking(list_resources, app.arm_for(account), account, request_id=request_id)
            )
        return listings[alias]

    async def deployments(alias: str) -> list[Row]:
        account = settings.account(alias)
        return [app.deployments.view(resource, account) for resource in await listing(alias)]

    async def endpoints(alias: str) -> list[Row]:
        return await app.run_blocking(app.serverless.list_endpoints, alias, request_id=request_id)

    def idle_of(alias: str) -> IdleReport:
        async def report() -> list[Row]:
            account, now = settings.account(alias), datetime.now(UTC)
            metrics = app.run_blocking(
                last_use_by_deployment,
                settings,
                app.arm_for(account),
                account,
                MAX_SERIES,
                now=now,
                request_id=request_id,
            )
            resources, last = await asyncio.gather(asyncio.shield(listing(alias)), metrics)
            return [
                idle_row(Usage(r, last.get(str(r.get("name", "")).lower())), account, now.date()) for r in resources
            ]

        return report

    async def intents() -> list[Row]:
        from .intents import pending_intents

        return await app.run_blocking(pending_intents, app.work_store)

    return Sources(
        lists=[
            Source("deployment", "account", list(settings.accounts), deployments),
            Source("serverlessEndpoint", "project", list(settings.foundry_projects), endpoints),
        ],
        idle=[(alias, idle_of(alias)) for alias in settings.accounts],
        # Deploy intents live in Table Storage: none to show where the app has no storage (a bare local run).
        intents=[intents] if settings.storage.configured else [],
    )


async def overview(app: AppContext, caller: Caller, *, request_id: str | None = None) -> dict[str, Any]:
    """The route's answer, from this app's sources."""
    settings = app.settings
    answer = await build(sources_of(app, request_id), settings.price_table, caller)
    # Whether GET /audit can answer here (records that only go to the log, locally, cannot be queried).
    answer["auditQueryable"] = settings.storage.configured
    return answer


async def build(sources: Sources, table: PriceTable, caller: Caller) -> dict[str, Any]:
    """Fetch every alias of every source, the idle reports and the intents concurrently; rows, totals, errors."""
    jobs = [(source, alias) for source in sources.lists for alias in source.aliases]
    listed, idle, intents = await asyncio.gather(
        asyncio.gather(*(_guarded(source.fetch(alias)) for source, alias in jobs)),
        asyncio.gather(*(_guarded(report()) for _, report in sources.idle)),
        asyncio.gather(*(_guarded(pending()) for pending in sources.intents)),
    )
    rows: list[Row] = []
    errors: list[dict[str, Any]] = []
    costs: dict[tuple[str, str, Any], dict[str, Any]] = {}  # many rows share a model, SKU and capacity
    for (source, alias), (items, error) in zip(jobs, listed, strict=True):
        if error is not None:
            errors.append({source.scope: alias, "error": error})
            continue
        rows.extend(row_of(source, alias, item, table, costs) for item in items)
    idle_rows: list[Row] = []
    for (alias, _), (items, error) in zip(sources.idle, idle, strict=True):
        if error is not None:
            errors.append({"account": alias, "source": "idleReport", "error": error})
        idle_rows.extend(items)
    _merge_idle(rows, idle_rows)
    pending: list[Row] = []
    for items, error in intents:
        if error is not None:
            errors.append({"source": "deployIntents", "error": error})
        pending.extend(items)
    rows.sort(key=lambda row: (row.get("account") or row.get("project") or "", str(row.get("name") or "")))
    return {
        "generatedAt": datetime.now(UTC).isoformat(timespec="seconds"),
        "caller": {"name": caller.label, "roles": sorted(role.value for role in caller.granted())},
        "value": rows,
        "totals": totals(rows, [(source.scope, alias) for source, alias in jobs]),
        "pendingDeployments": pending,
        "errors": errors,
        "prices": table.about(),
        "idleMarkDays": IDLE_MARK_DAYS,
    }


async def _guarded(call: Awaitable[list[Row]]) -> tuple[list[Row], dict[str, str] | None]:
    """A source's rows, or its error as the overview reports it (never raised: the others still show)."""
    try:
        return list(await call), None
    except ServiceError as error:
        return [], {"code": error.code, "message": error.message}
    except Exception:
        log.exception("An overview source failed")
        return [], {"code": "InternalServerError", "message": "This source failed unexpectedly; see the app's log."}


def row_of(
    source: Source, alias: str, item: Row, table: PriceTable, costs: dict[tuple[str, str, Any], dict[str, Any]]
) -> Row:
    """One row of the page from a service view (a deployment, or a serverless endpoint)."""
    model = item.get("model")
    model_name = str(model.get("name") or "") if isinstance(model, dict) else str(model or "")
    sku: dict[str, Any] = item["sku"] if isinstance(item.get("sku"), dict) else {}
    tags: dict[str, Any] = item["tags"] if isinstance(item.get("tags"), dict) else {}
    sku_name = str(sku.get("name") or "") if sku else None
    capacity = sku.get("capacity") if sku else None
    if source.kind == "deployment":
        key = (model_name, sku_name or "", capacity)
        cost = costs.get(key) or costs.setdefault(key, estimate(model_name, sku_name or "", capacity, table))
        cost = dict(cost)
    else:  # a serverless endpoint: tokens only for a catalog model, an hourly fee for a fine-tuned one
        cost = estimate_serverless(model_name, table)
    keep_alive = str(tags.get(KEEP_ALIVE_TAG, "")).strip().lower()
    row: Row = {
        "kind": source.kind,
        source.scope: alias,
        "name": item.get("name"),
        "model": model_name,
        "modelVersion": model.get("version") if isinstance(model, dict) else None,
        "sku": sku_name,
        "capacity": capacity,
        "state": item.get("provisioningState"),
        "endpointState": item.get("endpointState"),
        "tags": tags,
        "expiresAt": tags.get(EXPIRES_TAG) or None,
        "keepAlive": keep_alive == "true",
        **dict.fromkeys(IDLE_FIELDS),
        "cost": cost,
        "idleAndCosting": False,
        "id": item.get("id"),
    }
    return row


def _merge_idle(rows: list[Row], idle_rows: list[Row]) -> None:
    """Idle figures onto the deployment rows they name; the idle-and-costing mark where both hold."""
    by_key = {(str(r.get("account")), str(r.get("name")).lower()): r for r in idle_rows if isinstance(r, dict)}
    for row in rows:
        found = by_key.get((str(row.get("account")), str(row.get("name")).lower()))
        if found is not None:
            for field in IDLE_FIELDS:
                row[field] = found.get(field)
            if found.get("expiresAt") is not None:
                row["expiresAt"] = found["expiresAt"]
            if found.get("keepAlive") is not None:
                row["keepAlive"] = bool(found["keepAlive"])
        idle_days, per_hour = row.get("idleDays"), row["cost"].get("perHour")
        row["idleAndCosting"] = bool(
            isinstance(idle_days, (int, float)) and idle_days >= IDLE_MARK_DAYS and (per_hour or 0) > 0
        )


def totals(rows: list[Row], groups: list[tuple[Scope, str]]) -> dict[str, Any]:
    """Count and estimated cost per account or project (every configured one, also when empty) and overall;
    rows without a price count in `unpriced`, not in the sums."""

    def empty() -> dict[str, Any]:
        return {"count": 0, "perHour": 0.0, "per30Days": 0.0, "unpriced": 0}

    per_group: dict[tuple[str, str], dict[str, Any]] = {group: empty() for group in groups}
    overall = empty()
    for row in rows:
        scope: Scope = "account" if "account" in row else "project"
        group = per_group.setdefault((scope, str(row[scope])), empty())
        for total in (group, overall):
            total["count"] += 1
            if row["cost"].get("perHour") is None:
                total["unpriced"] += 1
            else:
                total["perHour"] += row["cost"]["perHour"]
                total["per30Days"] += row["cost"]["per30Days"]
    for total in [*per_group.values(), overall]:
        total["perHour"], total["per30Days"] = round(total["perHour"], 4), round(total["per30Days"], 2)
    return {
        "groups": [{"scope": scope, "name": name, **total} for (scope, name), total in per_group.items()],
        "overall": overall,
    }
