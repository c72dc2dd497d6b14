"""Failover groups (`INFERENCE_GROUPS`): regional copies of one fine-tuned model behind one name.

A group lists members (`account` alias, `deployment`, `priority`, `weight`). A call goes to the lowest priority
number first, weighted at random among equals. A member that answers 429, 5xx or fails to connect before any
answer byte is tripped for its `retry-after-ms` / `Retry-After` (clamped to 1-60 s, 10 s when it gives none) and
the call moves to the next member: this is the only retry layer on a group call. When every member is tripped
the answer is 429 with the smallest Retry-After. Trips are shared through Redis when it is configured (every
instance skips a throttled member at once), and kept per instance otherwise.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import GatewayTimeout, NoMemberAvailable, UpstreamUnavailable
from .limit_rules import RuleError
from .web import retry_after_seconds

log = logging.getLogger("failover")

MIN_TRIP_SECONDS, MAX_TRIP_SECONDS, DEFAULT_TRIP_SECONDS = 1.0, 60.0, 10.0
_MEMBER_KEYS = frozenset({"account", "deployment", "priority", "weight"})
GROUPS_EXAMPLE = '{"support-bot": [{"account": "main", "deployment": "support-bot", "priority": 1}]}'


@dataclass(frozen=True)
class Member:
    account: str
    deployment: str
    priority: int = 1
    weight: int = 1

    @property
    def name(self) -> str:
        return f"{self.account}/{self.deployment}"


@dataclass(frozen=True)
class Group:
    name: str
    members: tuple[Member, ...]


def parse_groups(value: Any) -> dict[str, Group]:
    if not isinstance(value, dict):
        raise RuleError(f"must be a JSON object of group name -> members, for example {GROUPS_EXAMPLE}")
    groups = {}
    for name, members in value.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise RuleError(f"group name '{name}' must be a non-empty name without '/'")
        if not isinstance(members, list) or not members:
            raise RuleError(f"group '{name}' must list at least one member, for example {GROUPS_EXAMPLE}")
        groups[name] = Group(name, tuple(_member(name, index, entry) for index, entry in enumerate(members)))
    return groups


def _member(group: str, index: int, entry: Any) -> Member:
    where = f"group '{group}' member {index}"
    if not isinstance(entry, dict):
        raise RuleError(f"{where} must be an object, for example {GROUPS_EXAMPLE}")
    unknown = sorted(set(entry) - _MEMBER_KEYS)
    if unknown:
        raise RuleError(f"{where} has unknown keys {unknown}; allowed: {sorted(_MEMBER_KEYS)}")
    account, deployment = entry.get("account"), entry.get("deployment")
    if not isinstance(account, str) or not account or not isinstance(deployment, str) or not deployment:
        raise RuleError(f"{where} needs 'account' (an alias of AZURE_OPENAI_ACCOUNTS) and 'deployment'")
    numbers = {}
    for key in ("priority", "weight"):
        number = entry.get(key, 1)
        if not isinstance(number, int) or isinstance(number, bool) or number < 1:
            raise RuleError(f"{where}: '{key}' must be a whole number of at least 1")
        numbers[key] = number
    return Member(account, deployment, numbers["priority"], numbers["weight"])


def ordered(members: tuple[Member, ...], rng: random.Random | None = None) -> list[Member]:
    """Lowest priority number first; among equal priorities a weighted random order (each member drawn with
    probability proportional to its weight)."""
    draw = (rng or random).random
    keyed = [(member.priority, -(draw() ** (1.0 / member.weight)), index) for index, member in enumerate(members)]
    return [members[index] for _, _, index in sorted(keyed)]


def trip_seconds(headers: Any) -> float:
    """How long a member stays tripped: its own retry-after, within 1-60 s; 10 s when it gives none."""
    seconds = retry_after_seconds(headers) if headers is not None else None
    if seconds is None:
        return DEFAULT_TRIP_SECONDS
    return min(max(seconds, MIN_TRIP_SECONDS), MAX_TRIP_SECONDS)


class BreakerStore(Protocol):
    async def tripped(self, names: list[str], now: float) -> dict[str, float]: ...

    async def trip(self, name: str, until: float) -> None: ...


class LocalBreaker:
    """Trips kept in this instance."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    async def tripped(self, names: list[str], now: float) -> dict[str, float]:
        return {name: until for name in names if (until := self._until.get(name, 0.0)) > now}

    async def trip(self, name: str, until: float) -> None:
        self._until[name] = max(until, self._until.get(name, 0.0))


class SharedBreaker:
    """Trips kept in Redis (a key per member that expires with the trip), so every instance sees them; this
    instance's own trips when Redis cannot be reached."""

    PREFIX = "aoaigw:trip:"

    def __init__(self, redis: Any) -> None:
        self._redis = redis
        self._local = LocalBreaker()

    async def tripped(self, names: list[str], now: float) -> dict[str, float]:
        found = await self._local.tripped(names, now)
        try:
            values = await self._redis.mget([self.PREFIX + name for name in names])
        except Exception as error:  # the limiter logs the store's outages; trips then stay local
            log.debug("breaker read from Redis failed: %s", type(error).__name__)
            return found
        for name, value in zip(names, values, strict=True):
            if value is not None and float(value) > now:
                found[name] = max(float(value), found.get(name, 0.0))
        return found

    async def trip(self, name: str, until: float) -> None:
        await self._local.trip(name, until)
        try:
            milliseconds = max(int((until - time.time()) * 1000), 1)
            await self._redis.set(self.PREFIX + name, repr(until), px=milliseconds)
        except Exception as error:
            log.debug("breaker write to Redis failed: %s", type(error).__name__)


SendTo = Callable[[Member], Awaitable[Any]]


async def route(
    group: Group, breaker: BreakerStore, send: SendTo, *, clock: Callable[[], float] = time.time
) -> tuple[Member, Any]:
    """Send to the group's members in order until one answers with neither 429 nor 5xx; answers (member,
    answer). Raises NoMemberAvailable (429, the smallest Retry-After) when every member is tripped."""
    candidates = ordered(group.members)
    tripped = await breaker.tripped([member.name for member in candidates], clock())
    for member in candidates:
        if member.name in tripped:
            continue
        try:
            answer = await send(member)
        except (UpstreamUnavailable, GatewayTimeout) as error:
            until = clock() + DEFAULT_TRIP_SECONDS
            log.warning(
                "group %s: member %s failed (%s), tripped for %g s",
                group.name,
                member.name,
                error.code,
                DEFAULT_TRIP_SECONDS,
            )
        else:
            if answer.status != 429 and answer.status < 500:
                return member, answer
            seconds = trip_seconds(answer.headers)
            until = clock() + seconds
            await answer.aclose()
            log.warning(
                "group %s: member %s answered %d, tripped for %g s", group.name, member.name, answer.status, seconds
            )
        await breaker.trip(member.name, until)
        tripped[member.name] = until
    wait = max(1, math.ceil(min(tripped.values()) - clock())) if tripped else 1
    raise NoMemberAvailable(
        f"Every member of group '{group.name}' is throttled or failing "
        f"({', '.join(member.name for member in group.members)}); retry after {wait} s.",
        headers={"Retry-After": str(wait)},
        target="deployment",
    )
