"""Per-caller limits on inference: reserve an estimate before the call, settle the real usage after it.

The rule that applies (services.limit_rules) gives the limits; the counters are per caller and per deployment
(`alias/deployment`, or the group's name) in the shared store (Redis) or, without `REDIS_HOST`, in this
instance. Over a rate the answer is 429 RateLimitExceeded with Retry-After (seconds until enough of the rolling
minute frees up); over a quota it is 403 QuotaExceeded naming the period's end. Every answer under a rule
carries `x-ratelimit-remaining-caller-tokens` / `-requests`.

When Redis cannot be reached, `LIMITS_WHEN_STORE_DOWN` decides, and says so in the log once per outage and
again on recovery: `local` (the default) keeps enforcing every limit with this instance's own counters, `closed`
answers 503 LimitStoreUnavailable and sends nothing upstream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import LimitStoreUnavailable, QuotaExceeded, RateLimitExceeded
from .limit_rules import LimitRule, applicable_rule, period_bounds, rfc3339
from .limit_store import (
    ACCEPTED,
    NO_LIMIT,
    OVER_QUOTA,
    OVER_REQUESTS,
    Ask,
    LimitStore,
    MemoryLimitStore,
    Outcome,
    retry_after,
)

log = logging.getLogger("limits")

DEFAULT_COMPLETION_ESTIMATE = 1000  # completion tokens reserved when the call sets no max_tokens
IMAGE_ESTIMATE = {"low": 85, "high": 765}  # a low-detail image; a high-detail 1024x1024 one (4 tiles + base)
RETRY_STORE_SECONDS = 2.0  # while Redis is down, try it again this often
REMAINING_TOKENS = "x-ratelimit-remaining-caller-tokens"
REMAINING_REQUESTS = "x-ratelimit-remaining-caller-requests"


def estimate_tokens(payload: dict[str, Any]) -> int:
    """Prompt (about 4 characters a token, plus each message's framing, images by detail) and the completion's
    ceiling (`max_completion_tokens` / `max_tokens`, else DEFAULT_COMPLETION_ESTIMATE)."""
    characters, framing, images = 0, 0, 0
    for message in payload.get("messages") or ():
        if not isinstance(message, dict):
            continue
        framing += 4
        content = message.get("content")
        parts = content if isinstance(content, list) else [content]
        for part in parts:
            if isinstance(part, str):
                characters += len(part)
            elif isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    characters += len(part["text"])
                image = part.get("image_url")
                if isinstance(image, dict):
                    images += IMAGE_ESTIMATE["low" if image.get("detail") == "low" else "high"]
    for key in ("tools", "functions"):
        if payload.get(key):
            characters += len(str(payload[key]))
    completion = payload.get("max_completion_tokens") or payload.get("max_tokens")
    if not isinstance(completion, int) or isinstance(completion, bool) or completion < 1:
        completion = DEFAULT_COMPLETION_ESTIMATE
    return characters // 4 + framing + images + completion


@dataclass
class Hold:
    """A reservation made for one call, settled once with what the call used."""

    limiter: Limiter
    store: LimitStore
    rule: LimitRule
    ask: Ask
    outcome: Outcome
    settled: bool = False

    def headers(self) -> dict[str, str]:
        return _remaining_headers(self.rule, self.outcome)

    async def settle(self, total_tokens: int | None, *, refund: bool = False) -> None:
        """Correct the reservation: by the real total, or give the estimate back (`refund`, nothing used)."""
        if self.settled or not (self.ask.tokens_per_minute or self.ask.quota):
            return
        self.settled = True
        if refund:
            delta = -self.ask.cost
        elif total_tokens is None:
            return  # no usage known (a cut stream): the estimate stands
        else:
            delta = total_tokens - self.ask.cost
        if delta:
            try:
                await self.store.settle(self.ask, delta)
            except Exception as error:  # the reservation stands; the store's outage is logged by reserve
                log.debug("settling a reservation failed: %s", type(error).__name__)

    def settle_soon(self, total_tokens: int | None, *, refund: bool = False) -> None:
        """Settle off the caller's path (from code that is not awaiting), keeping a reference until done."""
        try:
            task = asyncio.get_running_loop().create_task(self.settle(total_tokens, refund=refund))
        except RuntimeError:
            return
        self.limiter._pending.add(task)
        task.add_done_callback(self.limiter._pending.discard)


class Limiter:
    """The limits of INFERENCE_LIMITS over a shared store (Redis) with a local fallback."""

    def __init__(
        self,
        rules: Iterable[LimitRule],
        shared: LimitStore | None,
        *,
        when_down: str = "local",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rules = tuple(rules)
        self.shared = shared
        self.local = MemoryLimitStore()
        self.when_down = when_down
        self.clock = clock
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def store_down(self) -> bool:
        return self._down_since is not None

    async def reserve(
        self,
        caller_ids: Iterable[str],
        roles: Iterable[str],
        alias: str | None,
        deployment: str,
        payload: dict[str, Any],
    ) -> Hold | None:
        """Reserve this call's estimate under the rule that applies (None: no rule, nothing to count), or raise
        RateLimitExceeded / QuotaExceeded / LimitStoreUnavailable."""
        ids = [caller_id for caller_id in caller_ids if caller_id]
        rule = applicable_rule(self.rules, ids, roles, alias, deployment)
        if rule is None:
            return None
        now = self.clock()
        scope = f"{alias}/{deployment}" if alias is not None else deployment
        quota_end = 0
        period = ""
        if rule.quota_tokens and rule.quota_period:
            start, end = period_bounds(rule.quota_period, now)
            period, quota_end = start.strftime("%Y%m%dT%H"), int(end.timestamp() * 1000)
        ask = Ask(
            key=f"{rule.index}|{ids[0] if ids else '-'}|{scope}",
            now_ms=int(now * 1000),
            cost=estimate_tokens(payload) if (rule.tokens_per_minute or rule.quota_tokens) else 0,
            tokens_per_minute=rule.tokens_per_minute or 0,
            requests_per_minute=rule.requests_per_minute or 0,
            quota=rule.quota_tokens or 0,
            quota_period=period,
            quota_end_ms=quota_end,
        )
        store, outcome = await self._reserve(ask)
        if outcome.status != ACCEPTED:
            raise _refusal(rule, ask, outcome, scope)
        return Hold(self, store, rule, ask, outcome)

    async def _reserve(self, ask: Ask) -> tuple[LimitStore, Outcome]:
        shared = self.shared
        if shared is not None and (self._down_since is None or self.clock() >= self._retry_at):
            try:
                outcome = await shared.reserve(ask)
            except Exception as error:
                if not _is_store_error(error):
                    raise
                self._went_down(error)
            else:
                self._came_back()
                return shared, outcome
        if shared is not None and self.when_down == "closed":
            raise LimitStoreUnavailable(
                "The limits' store (REDIS_HOST) cannot be reached and LIMITS_WHEN_STORE_DOWN=closed, so the call was "
                "not sent. Retry shortly; an operator checks the Redis instance and the app's access to it.",
                headers={"Retry-After": str(int(RETRY_STORE_SECONDS) or 1)},
            )
        return self.local, self.local.reserve_now(ask)

    def _went_down(self, error: BaseException) -> None:
        now = self.clock()
        self._retry_at = now + RETRY_STORE_SECONDS
        if self._down_since is None:
            self._down_since = now
            then = (
                "limits are enforced with this instance's own counters until it is back"
                if self.when_down == "local"
                else "inference calls under a limit are refused with 503 until it is back"
            )
            log.error(
                "The limits' store (REDIS_HOST) cannot be reached (%s); LIMITS_WHEN_STORE_DOWN=%s: %s.",
                type(error).__name__,
                self.when_down,
                then,
            )

    def _came_back(self) -> None:
        if self._down_since is not None:
            log.warning(
                "The limits' store (REDIS_HOST) is reachable again after %.0f s: limits are shared again.",
                self.clock() - self._down_since,
            )
            self._down_since = None

    async def aclose(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


def report_at_start(rules: Iterable[LimitRule], redis_host: str | None) -> None:
    """Say at start what a limit without a shared store means."""
    if tuple(rules) and not redis_host:
        log.warning(
            "INFERENCE_LIMITS is set but REDIS_HOST is not: limits are counted in each instance on its own, so with "
            "N instances a caller may use up to N times each limit. Set REDIS_HOST to share them."
        )


def _remaining_headers(rule: LimitRule, outcome: Outcome) -> dict[str, str]:
    headers = {}
    tokens = outcome.remaining_tokens if rule.tokens_per_minute else outcome.remaining_quota
    if (rule.tokens_per_minute or rule.quota_tokens) and tokens != NO_LIMIT:
        headers[REMAINING_TOKENS] = str(max(tokens, 0))
    if rule.requests_per_minute and outcome.remaining_requests != NO_LIMIT:
        headers[REMAINING_REQUESTS] = str(max(outcome.remaining_requests, 0))
    return headers


def _refusal(rule: LimitRule, ask: Ask, outcome: Outcome, scope: str) -> Exception:
    headers = _remaining_headers(rule, outcome)
    if outcome.status == OVER_QUOTA:
        end = rfc3339(datetime.fromtimestamp(ask.quota_end_ms / 1000, UTC))
        headers["Retry-After"] = str(retry_after(outcome.wait_ms))
        return QuotaExceeded(
            f"The {rule.quota_period} token quota ({rule.quota_tokens} tokens, tokenQuota of the rule for "
            f"{rule.label}) is used up for '{scope}' until {end}.",
            target="tokenQuota",
            headers=headers,
        )
    limit = "requestsPerMinute" if outcome.status == OVER_REQUESTS else "tokensPerMinute"
    value = rule.requests_per_minute if outcome.status == OVER_REQUESTS else rule.tokens_per_minute
    wait = retry_after(outcome.wait_ms)
    headers["Retry-After"] = str(wait)
    needed = f" ({ask.cost} tokens estimated for this call)" if limit == "tokensPerMinute" else ""
    return RateLimitExceeded(
        f"Over the {limit} limit ({value}, rule for {rule.label}) on '{scope}'{needed}; retry after {wait} s.",
        target=limit,
        headers=headers,
    )


def _is_store_error(error: BaseException) -> bool:
    if isinstance(error, OSError | asyncio.TimeoutError | TimeoutError):
        return True
    try:
        from redis.exceptions import RedisError
    except ImportError:
        return False
    return isinstance(error, RedisError)
