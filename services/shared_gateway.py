"""What makes the inference proxy a gateway many teams share, around each call: the caller's limits (reserve,
then settle), failover across a group's members, one usage-ledger row and the metrics.

The proxy (services.inference) calls `admit` before it sends and `route` for a group; everything that must
happen when a call ends runs from the call's record (`CallRecord.sinks`), off the caller's path.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .errors import ServiceError
from .failover import BreakerStore, Group, Member, route
from .limiter import Hold, Limiter

log = logging.getLogger("inference")


class SharedGateway:
    def __init__(
        self,
        *,
        limiter: Limiter | None,
        breaker: BreakerStore,
        ledger: Any = None,  # services.ledger.Ledger
        metrics: Any = None,  # services.metrics.Metrics
    ) -> None:
        self.limiter = limiter
        self.breaker = breaker
        self.ledger = ledger
        self.metrics = metrics
        self.redis: Any = None

    async def admit(self, record: Any, principal: Any, account: Any, payload: dict[str, Any]) -> Hold | None:
        """Reserve the call under the caller's rule (None when no rule applies); a refusal is recorded and
        raised (429 RateLimitExceeded, 403 QuotaExceeded, 503 LimitStoreUnavailable)."""
        hold = None
        limiter = self.limiter
        if limiter is not None and limiter.rules:
            ids = [principal.object_id, principal.app_id] if principal is not None else [record.caller]
            roles = [str(role) for role in principal.roles] if principal is not None else []
            alias = account.alias if account is not None else None
            try:
                hold = await limiter.reserve(ids, roles, alias, record.deployment, payload)
            except ServiceError as error:
                self.observe(record)
                record.status = error.status
                record.write()
                raise
        self.observe(record, hold)
        return hold

    def observe(self, record: Any, hold: Hold | None = None) -> None:
        """What runs when the call ends: settle the reservation, the ledger row, the metrics."""
        if hold is not None:
            record.sinks.append(lambda done: _settle(hold, done))
        if self.ledger is not None:
            record.sinks.append(self.ledger.add)
        if self.metrics is not None:
            record.sinks.append(self.metrics.record)

    async def route(self, group: Group, record: Any, send: Callable[[Member], Awaitable[Any]]) -> Any:
        """The first member's answer that is neither 429 nor 5xx; NoMemberAvailable (429) when all are tripped."""
        try:
            _, answer = await route(group, self.breaker, send)
        except BaseException as error:
            record.status = getattr(error, "status", 500)
            record.write()
            raise
        return answer

    async def aclose(self) -> None:
        """Finish pending settlements and close the Redis connections (the ledger closes in `close`)."""
        if self.limiter is not None:
            await self.limiter.aclose()
        redis, self.redis = self.redis, None
        if redis is not None:
            await redis.aclose()

    def close(self) -> None:
        """Write what the ledger still holds (bounded) and stop its writer."""
        if self.ledger is not None:
            self.ledger.close()


def _settle(hold: Hold, record: Any) -> None:
    try:
        if record.status >= 400 and record.total_tokens is None:
            hold.settle_soon(None, refund=True)  # the upstream refused or failed: nothing was used
        else:
            hold.settle_soon(record.total_tokens if isinstance(record.total_tokens, int) else None)
    except Exception:  # a sink never fails the call
        log.exception("settling a limit reservation failed")


def build_shared(settings: Any, credential: Callable[[], Any]) -> SharedGateway:
    """The process's shared-gateway parts from the settings: Redis when REDIS_HOST names it (the limits' counters
    and failover trips), the usage ledger when the app has storage, the metrics."""
    from .failover import LocalBreaker, SharedBreaker
    from .ledger import Ledger, usage_table_client
    from .limit_store import RedisLimitStore
    from .metrics import Metrics

    redis = None
    if settings.redis_host:
        from .redis_client import make_redis

        redis = make_redis(
            settings.redis_host,
            credential=None if settings.redis_password else credential(),
            password=settings.redis_password,
            ssl=settings.redis_ssl,
            timeout_seconds=settings.redis_timeout_seconds,
        )
    limiter = None
    if settings.limit_rules:
        store = RedisLimitStore(redis) if redis is not None else None
        limiter = Limiter(settings.limit_rules, store, when_down=settings.limits_when_store_down)
    client = usage_table_client(settings, credential)
    if client is None:
        log.warning("No AzureWebJobsStorage setting: the usage ledger is off (GET /api/usage answers 503).")
    shared = SharedGateway(
        limiter=limiter,
        breaker=SharedBreaker(redis) if redis is not None else LocalBreaker(),
        ledger=Ledger(client, flush_seconds=settings.usage_flush_seconds) if client is not None else None,
        metrics=Metrics(),
    )
    shared.redis = redis
    return shared
