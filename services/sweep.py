"""The sweep (timer trigger `sweep`, `SWEEP_SCHEDULE`): expire deployments, keep seldom-used ones alive, and carry
out deploy intents whose fine-tuning job finished.

Over every configured account:
- a deployment past its `expiresAt` tag is deleted (audit action `expire`);
- a deployment tagged `keepAlive=true` idle for `KEEPALIVE_AFTER_DAYS` days gets one minimal inference call (one
  short message, `max_tokens: 1`), so Azure's 15-day removal of idle fine-tuned deployments does not take it
  (audit action `keepalive`);
- open deploy intents move on (services.fine_tuning.advance_intent); each finished one is published on the results
  queue (action `deploy`, requestId `intent:<job id>`).

Every action is recorded with actor `timer:sweep`. Safe on several instances at once: a deletion already under
way is no error and is not repeated, a keep-alive call is claimed per deployment and day in the work table, and
intents move only by conditional (ETag) updates. One account's failure does not stop the others.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from .audit import AuditTrail
from .auth import Caller
from .errors import ServiceError
from .fine_tuning import advance_intent
from .idle import Usage, account_usage
from .intents import open_intents
from .lifecycle_tags import expired, expires_at, keep_alive
from .settings import Account

log = logging.getLogger("sweep")

ACTOR = "timer:sweep"
KEEPALIVE_PARTITION = "keepalive"
KEEPALIVE_BODY = {"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}


async def run_sweep(app: Any, *, now: datetime | None = None) -> dict[str, Any]:
    """One sweep over every account, every Foundry project's serverless endpoints and every open intent; answers
    what it did (also logged)."""
    now = now or datetime.now(UTC)
    request_id = f"sweep-{uuid.uuid4()}"
    trail = AuditTrail(Caller(name=ACTOR), request_id, app.audit_store)
    summary: dict[str, list[Any]] = {"expired": [], "keptAlive": [], "intents": [], "errors": []}
    for account in app.settings.accounts.values():
        try:
            usages = await app.run_blocking(
                account_usage, app.settings, app.arm_for(account), account, now=now, request_id=request_id
            )
        except ServiceError as error:
            summary["errors"].append({"account": account.alias, "code": error.code, "message": error.message})
            continue
        for usage in usages:
            try:
                await _sweep_one(app, account, usage, now, trail, request_id, summary)
            except ServiceError as error:
                name = usage.resource.get("name")
                summary["errors"].append({"account": account.alias, "name": name, "code": error.code})
    for alias in app.settings.foundry_projects:
        await _expire_endpoints(app, alias, now, trail, request_id, summary)
    await _advance_intents(app, trail, request_id, summary)
    log.info("sweep %s", json.dumps(summary))
    return summary


async def _sweep_one(
    app: Any, account: Account, usage: Usage, now: datetime, trail: AuditTrail, request_id: str, summary: Any
) -> None:
    current = usage.current
    name = str(usage.resource.get("name"))
    if expired(current.tags, now):
        if current.state.lower() == "deleting":
            return  # another instance's expiry (or a caller's DELETE) is under way
        await app.run_blocking(
            app.deployments.delete,
            account.alias,
            name,
            wait="0",
            request_id=request_id,
            audit=trail,
            action="expire",
            asked={"expiresAt": expires_at(current.tags)},
        )
        summary["expired"].append({"account": account.alias, "name": name})
        return
    idle = usage.idle_days(now.date())
    if not keep_alive(current.tags) or idle < app.settings.keepalive_after_days or current.state != "Succeeded":
        return
    claim = f"{account.alias}:{name}:{now.date().isoformat()}"
    claimed = await app.run_blocking(app.work_store.insert, KEEPALIVE_PARTITION, claim, {"at": now})
    if not claimed:
        return  # another instance keeps it alive today
    body = json.dumps(KEEPALIVE_BODY).encode()
    try:
        await app.gateway.completion_json(
            account, name, body, request_id=request_id, operation="keepalive", caller=ACTOR
        )
    except ServiceError as error:  # recorded as it ended, then counted in the sweep's errors
        await app.run_blocking(_record_keepalive, trail, account, name, idle, error.status, error.code)
        raise
    await app.run_blocking(_record_keepalive, trail, account, name, idle, 200, None)
    summary["keptAlive"].append({"account": account.alias, "name": name, "idleDays": idle})


def _record_keepalive(trail: AuditTrail, account: Account, name: str, idle: int, status: int, code: str | None) -> None:
    """The audit record of one keep-alive call, with the answer it really got."""
    with trail.record("keepalive", account.alias, name, {"idleDays": idle, "max_tokens": 1}) as entry:
        entry.changed = False
        entry.outcome = {"status": status, "provisioningState": None, "code": code}


async def _expire_endpoints(
    app: Any, alias: str, now: datetime, trail: AuditTrail, request_id: str, summary: Any
) -> None:
    """A Foundry project's serverless endpoints past their `expiresAt` tag are deleted (audit action `expire`)."""
    try:
        endpoints = await app.run_blocking(app.serverless.list_endpoints, alias, request_id=request_id)
    except ServiceError as error:
        summary["errors"].append({"project": alias, "code": error.code, "message": error.message})
        return
    for endpoint in endpoints:
        tags, name = endpoint.get("tags") or {}, str(endpoint.get("name"))
        if not expired(tags, now) or str(endpoint.get("provisioningState", "")).lower() == "deleting":
            continue  # not due, or another instance's expiry (or a caller's DELETE) is under way
        try:
            await app.run_blocking(
                app.serverless.delete,
                alias,
                name,
                wait="0",
                request_id=request_id,
                audit=trail,
                action="expire",
                asked={"expiresAt": expires_at(tags)},
            )
        except ServiceError as error:
            summary["errors"].append({"project": alias, "name": name, "code": error.code})
            continue
        summary["expired"].append({"project": alias, "name": name})


async def _advance_intents(app: Any, trail: AuditTrail, request_id: str, summary: Any) -> None:
    try:
        records = await app.run_blocking(open_intents, app.work_store)
    except ServiceError as error:
        summary["errors"].append({"intents": True, "code": error.code, "message": error.message})
        return
    for record in records:
        try:
            finished = await advance_intent(
                record,
                store=app.work_store,
                gateway=app.gateway,
                deployments=app.deployments,
                run_blocking=app.run_blocking,
                audit=trail,
                request_id=request_id,
            )
        except ServiceError as error:
            summary["errors"].append({"jobId": record.get("jobId"), "code": error.code})
            continue
        if finished is None:
            continue
        summary["intents"].append({"jobId": finished["jobId"], "status": finished["status"]})
        await app.run_blocking(app.queues.publish, intent_result(finished))


def intent_result(intent: dict[str, Any]) -> dict[str, Any]:
    """An intent's outcome as a results-queue message."""
    return {
        "requestId": f"intent:{intent['jobId']}",
        "action": "deploy",
        "name": intent["deployment"],
        "account": intent["account"],
        "status": intent["status"],
        "deployment": intent.get("result"),
        "error": intent.get("error"),
    }
