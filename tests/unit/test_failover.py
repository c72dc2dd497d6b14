"""Failover groups: member order, trip lengths from the member's own retry-after, and routing over scripted
answers (every send counted: one retry layer)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import pytest

from services.errors import NoMemberAvailable, UpstreamUnavailable
from services.failover import LocalBreaker, Member, ordered, parse_groups, route, trip_seconds
from services.limit_rules import RuleError

GROUP = parse_groups(
    {
        "chat": [
            {"account": "main", "deployment": "a", "priority": 1, "weight": 3},
            {"account": "west", "deployment": "b", "priority": 1, "weight": 1},
            {"account": "east", "deployment": "c", "priority": 2},
        ]
    }
)["chat"]


def test_lowest_priority_first_and_weighted_among_equals() -> None:
    rng = random.Random(7)
    firsts = Counter(ordered(GROUP.members, rng)[0].name for _ in range(4000))
    assert set(firsts) == {"main/a", "west/b"}  # priority 2 is never first
    assert 2.6 < firsts["main/a"] / firsts["west/b"] < 3.4  # weight 3 against 1
    assert all(ordered(GROUP.members, rng)[2].name == "east/c" for _ in range(50))


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [({"retry-after-ms": "2500"}, 2.5), ({"Retry-After": "0"}, 1.0), ({"Retry-After": "600"}, 60.0), ({}, 10.0)],
)
def test_a_trip_lasts_the_members_retry_after_within_bounds(headers: dict[str, str], seconds: float) -> None:
    assert trip_seconds(headers) == seconds


def test_bad_groups_are_refused() -> None:
    with pytest.raises(RuleError, match="at least one member"):
        parse_groups({"chat": []})
    with pytest.raises(RuleError, match="'weight' must be a whole number"):
        parse_groups({"chat": [{"account": "main", "deployment": "a", "weight": 0}]})


class Answer:
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.status, self.headers, self.closed = status, headers or {}, False

    async def aclose(self) -> None:
        self.closed = True


def scripted(answers: dict[str, Any]) -> tuple[Any, list[str]]:
    sent: list[str] = []

    async def send(member: Member) -> Any:
        sent.append(member.name)
        answer = answers[member.name]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return send, sent


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_throttled_or_failing_member_is_skipped_until_its_trip_ends() -> None:
    clock, breaker = Clock(), LocalBreaker()
    throttled = Answer(429, {"retry-after-ms": "4000"})
    send, sent = scripted({"main/a": throttled, "west/b": UpstreamUnavailable("down"), "east/c": Answer(200)})
    member, answer = asyncio.run(route(GROUP, breaker, send, clock=clock))
    assert member.name == "east/c" and answer.status == 200
    assert sorted(sent) == ["east/c", "main/a", "west/b"]  # each member once: no retries inside
    assert throttled.closed
    sent.clear()
    asyncio.run(route(GROUP, breaker, send, clock=clock))
    assert sent == ["east/c"]  # both others still tripped
    clock.now += 4.5  # main/a's 4 s are over; west/b's default 10 s are not
    send2, sent2 = scripted({"main/a": Answer(200), "west/b": Answer(200), "east/c": Answer(200)})
    assert asyncio.run(route(GROUP, breaker, send2, clock=clock))[0].name == "main/a"
    assert sent2 == ["main/a"]


def test_every_member_tripped_is_429_with_the_smallest_retry_after() -> None:
    clock, breaker = Clock(), LocalBreaker()
    send, sent = scripted(
        {
            "main/a": Answer(429, {"retry-after-ms": "7000"}),
            "west/b": Answer(503, {"Retry-After": "3"}),
            "east/c": Answer(500),
        }
    )
    with pytest.raises(NoMemberAvailable) as refused:
        asyncio.run(route(GROUP, breaker, send, clock=clock))
    assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "3"
    assert len(sent) == 3
    with pytest.raises(NoMemberAvailable):
        asyncio.run(route(GROUP, breaker, send, clock=clock))
    assert len(sent) == 3  # nothing sent while every member is tripped


def test_a_client_error_is_the_answer_not_a_failover() -> None:
    send, sent = scripted({"main/a": Answer(400), "west/b": Answer(400), "east/c": Answer(200)})
    _, answer = asyncio.run(route(GROUP, LocalBreaker(), send, clock=Clock()))
    assert answer.status == 400 and len(sent) == 1
