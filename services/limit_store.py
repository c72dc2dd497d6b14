"""Where the limits' counters live: Redis (shared by every instance) or this process's memory.

Rates are a rolling 60-second window kept as one-second slots (a hash of second -> tokens), so a burst at a
minute's edge cannot pass twice the limit the way a fixed window lets it. Reserving checks the quota, the
tokens and the requests windows together and writes nothing unless all three have room; settling corrects the
reservation's slot (and the quota) by what the call really used. In Redis both are one Lua script each, so
concurrent reservations from any number of instances are atomic: together they can overshoot a limit only by
the amount that the calls' real usage exceeds their estimates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

WINDOW_SECONDS = 60
NO_LIMIT = -1
# Outcomes of a reservation.
ACCEPTED, OVER_TOKENS, OVER_REQUESTS, OVER_QUOTA = 0, 1, 2, 3


@dataclass(frozen=True)
class Ask:
    """One reservation: the counters' key, the cost, the limits (0: none) and the quota's period."""

    key: str
    now_ms: int
    cost: int
    tokens_per_minute: int = 0
    requests_per_minute: int = 0
    quota: int = 0
    quota_period: str = ""  # e.g. "2026-11-30T00" for the period that started then
    quota_end_ms: int = 0

    @property
    def second(self) -> int:
        return self.now_ms // 1000


@dataclass(frozen=True)
class Outcome:
    status: int
    wait_ms: int = 0
    remaining_tokens: int = NO_LIMIT
    remaining_requests: int = NO_LIMIT
    remaining_quota: int = NO_LIMIT


class LimitStore(Protocol):
    async def reserve(self, ask: Ask) -> Outcome: ...

    async def settle(self, ask: Ask, delta: int) -> None: ...


def keys_of(ask: Ask) -> tuple[str, str, str]:
    """The three counters of a key; one hash tag, so a clustered Redis keeps them in one slot."""
    base = "aoaigw:{" + ask.key + "}"
    return base + ":t", base + ":r", base + ":q:" + ask.quota_period


RESERVE = """
local now = tonumber(ARGV[1])
local cost = tonumber(ARGV[2])
local tpm, rpm, quota = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local quota_end = tonumber(ARGV[6])
local sec = math.floor(now / 1000)
local oldest = sec - 59
local function window(key, limit, want)
  if limit <= 0 then return 0, -1 end
  local fields = redis.call('HGETALL', key)
  local used, live = 0, {}
  for i = 1, #fields, 2 do
    local s, v = tonumber(fields[i]), tonumber(fields[i + 1])
    if s < oldest then redis.call('HDEL', key, fields[i]) else used = used + v; live[#live + 1] = {s, v} end
  end
  if want > limit then want = limit end
  if used + want <= limit then return 0, limit - used - want end
  table.sort(live, function(a, b) return a[1] < b[1] end)
  local freed = 0
  for _, slot in ipairs(live) do
    freed = freed + slot[2]
    if used - freed + want <= limit then return (slot[1] + 60) * 1000 - now, 0 end
  end
  return 60000, 0
end
local quota_left = -1
if quota > 0 then
  local used = tonumber(redis.call('GET', KEYS[3]) or '0')
  if used >= quota then return {3, quota_end - now, -1, -1, 0} end
  quota_left = quota - used - cost
  if quota_left < 0 then quota_left = 0 end
end
local token_wait, tokens_left = window(KEYS[1], tpm, cost)
if token_wait > 0 then return {1, token_wait, 0, -1, quota_left} end
local request_wait, requests_left = window(KEYS[2], rpm, 1)
if request_wait > 0 then return {2, request_wait, tokens_left, 0, quota_left} end
if tpm > 0 then
  redis.call('HINCRBY', KEYS[1], sec, cost)
  redis.call('PEXPIRE', KEYS[1], 61000)
end
if rpm > 0 then
  redis.call('HINCRBY', KEYS[2], sec, 1)
  redis.call('PEXPIRE', KEYS[2], 61000)
end
if quota > 0 then
  redis.call('INCRBY', KEYS[3], cost)
  redis.call('PEXPIREAT', KEYS[3], quota_end + 60000)
end
return {0, 0, tokens_left, requests_left, quota_left}
"""

SETTLE = """
local slot, delta, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if tonumber(ARGV[4]) > 0 then
  if redis.call('HEXISTS', KEYS[1], slot) == 1 then
    redis.call('HINCRBY', KEYS[1], slot, delta)
  elseif delta > 0 then
    redis.call('HINCRBY', KEYS[1], math.floor(now / 1000), delta)
    redis.call('PEXPIRE', KEYS[1], 61000)
  end
end
if tonumber(ARGV[5]) > 0 and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('INCRBY', KEYS[2], delta)
end
return 1
"""


class RedisLimitStore:
    """Counters in Redis, updated by the two scripts (loaded once, then called by their hash)."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._reserve = redis.register_script(RESERVE)
        self._settle = redis.register_script(SETTLE)

    async def reserve(self, ask: Ask) -> Outcome:
        values = await self._reserve(
            keys=list(keys_of(ask)),
            args=[ask.now_ms, ask.cost, ask.tokens_per_minute, ask.requests_per_minute, ask.quota, ask.quota_end_ms],
        )
        return Outcome(*(int(value) for value in values))

    async def settle(self, ask: Ask, delta: int) -> None:
        tokens, _, quota = keys_of(ask)
        await self._settle(keys=[tokens, quota], args=[ask.second, delta, _now_ms(), ask.tokens_per_minute, ask.quota])


class MemoryLimitStore:
    """The same counters in this process (no Redis, or Redis down with LIMITS_WHEN_STORE_DOWN=local)."""

    def __init__(self) -> None:
        self._windows: dict[str, dict[int, int]] = {}
        self._quotas: dict[str, int] = {}

    async def reserve(self, ask: Ask) -> Outcome:
        return self.reserve_now(ask)

    def reserve_now(self, ask: Ask) -> Outcome:
        tokens_key, requests_key, quota_key = keys_of(ask)
        quota_left = NO_LIMIT
        if ask.quota > 0:
            used = self._quotas.get(quota_key, 0)
            if used >= ask.quota:
                return Outcome(OVER_QUOTA, ask.quota_end_ms - ask.now_ms, NO_LIMIT, NO_LIMIT, 0)
            quota_left = max(ask.quota - used - ask.cost, 0)
        token_wait, tokens_left = self._window(tokens_key, ask, ask.tokens_per_minute, ask.cost)
        if token_wait > 0:
            return Outcome(OVER_TOKENS, token_wait, 0, NO_LIMIT, quota_left)
        request_wait, requests_left = self._window(requests_key, ask, ask.requests_per_minute, 1)
        if request_wait > 0:
            return Outcome(OVER_REQUESTS, request_wait, tokens_left, 0, quota_left)
        for key, limit, amount in (
            (tokens_key, ask.tokens_per_minute, ask.cost),
            (requests_key, ask.requests_per_minute, 1),
        ):
            if limit > 0:
                slots = self._windows.setdefault(key, {})
                slots[ask.second] = slots.get(ask.second, 0) + amount
        if ask.quota > 0:
            self._quotas[quota_key] = self._quotas.get(quota_key, 0) + ask.cost
            self._forget_old_quotas(quota_key, ask)
        return Outcome(ACCEPTED, 0, tokens_left, requests_left, quota_left)

    async def settle(self, ask: Ask, delta: int) -> None:
        tokens_key, _, quota_key = keys_of(ask)
        if ask.tokens_per_minute > 0:
            slots = self._windows.setdefault(tokens_key, {})
            if ask.second in slots:
                slots[ask.second] += delta
            elif delta > 0:
                second = _now_ms() // 1000
                slots[second] = slots.get(second, 0) + delta
        if ask.quota > 0 and quota_key in self._quotas:
            self._quotas[quota_key] += delta

    def _window(self, key: str, ask: Ask, limit: int, want: int) -> tuple[int, int]:
        """(milliseconds to wait, 0) when `want` does not fit, else (0, what is left after it)."""
        if limit <= 0:
            return 0, NO_LIMIT
        slots = self._windows.setdefault(key, {})
        oldest = ask.second - WINDOW_SECONDS + 1
        for second in [s for s in slots if s < oldest]:
            del slots[second]
        used = sum(slots.values())
        want = min(want, limit)
        if used + want <= limit:
            return 0, limit - used - want
        freed = 0
        for second in sorted(slots):
            freed += slots[second]
            if used - freed + want <= limit:
                return (second + WINDOW_SECONDS) * 1000 - ask.now_ms, 0
        return WINDOW_SECONDS * 1000, 0

    def _forget_old_quotas(self, current: str, ask: Ask) -> None:
        prefix = current.rsplit(":q:", 1)[0] + ":q:"
        for key in [k for k in self._quotas if k.startswith(prefix) and k != current]:
            del self._quotas[key]


def retry_after(wait_ms: int) -> int:
    """Whole seconds for Retry-After: at least 1."""
    return max(1, math.ceil(wait_ms / 1000))


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)
