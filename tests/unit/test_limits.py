"""Per-caller limits: which rule applies, the rolling window and quotas on a test clock, the store-down modes, and
the Entra credential path of the Redis client (redis-entraid's own interfaces)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from services.errors import LimitStoreUnavailable, QuotaExceeded, RateLimitExceeded
from services.limit_rules import RuleError, applicable_rule, parse_rules, period_bounds
from services.limit_store import ACCEPTED, OVER_QUOTA, OVER_TOKENS, Ask, MemoryLimitStore
from services.limiter import REMAINING_REQUESTS, REMAINING_TOKENS, Limiter, estimate_tokens

ALICE, ROLE = "0d7c6c1e-aaaa-4aaa-8aaa-00000000a11c", "Inference.Invoke"
RULES = parse_rules(
    [
        {"caller": "*", "deployment": "*", "tokensPerMinute": 1},
        {"caller": "*", "deployment": "main/*", "tokensPerMinute": 2},
        {"caller": ROLE, "deployment": "*", "tokensPerMinute": 3},
        {"caller": ROLE, "deployment": "main/chat", "tokensPerMinute": 4},
        {"caller": ALICE, "deployment": "*", "tokensPerMinute": 5},
        {"caller": "*", "deployment": "support", "tokensPerMinute": 6},
    ]
)
CHAT = {"messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 100}  # 100 + 4 + 100 tokens


def chosen(ids: list[str], roles: list[str], alias: str | None, deployment: str) -> int | None:
    rule = applicable_rule(RULES, ids, roles, alias, deployment)
    return rule.tokens_per_minute if rule else None


def test_the_most_specific_rule_wins_caller_first() -> None:
    assert chosen([ALICE], [ROLE], "main", "chat") == 5  # a named caller beats a role, whatever the deployment
    assert chosen(["other"], [ROLE], "main", "chat") == 4  # then the role's named deployment
    assert chosen(["other"], [ROLE], "east", "x") == 3  # the role beats `*` even with a wider deployment
    assert chosen(["other"], [], "main", "chat") == 2  # alias/* beats *
    assert chosen(["other"], [], "east", "chat") == 1
    assert chosen(["other"], [], None, "support") == 6  # a failover group is named by itself


@pytest.mark.parametrize(
    ("rules", "words"),
    [
        ({"caller": "*"}, "sets no limit"),
        ({"caller": "*", "tokensPerMinute": 0}, "at least 1"),
        ({"caller": "*", "tokenQuota": {"tokens": 5, "period": "Yearly"}}, "Hourly, Daily, Weekly, Monthly"),
        ({"caller": "*", "deployment": "a/b/c", "tokensPerMinute": 1}, "alias/deployment"),
        ({"caller": "*", "tpm": 1}, "unknown keys ['tpm']"),
    ],
)
def test_bad_rules_are_refused_naming_the_rule(rules: dict[str, Any], words: str) -> None:
    with pytest.raises(RuleError, match="rule 0") as raised:
        parse_rules([rules])
    assert words in str(raised.value)


def ask(now: float, cost: int, **limits: Any) -> Ask:
    return Ask(key="k", now_ms=int(now * 1000), cost=cost, **limits)


def test_the_rolling_minute_allows_no_double_burst_at_a_minute_edge() -> None:
    store = MemoryLimitStore()
    start = 1_800_000_000.0  # a whole minute
    assert store.reserve_now(ask(start + 59.5, 100, tokens_per_minute=100)).status == ACCEPTED
    # A fixed window would start afresh at start + 60; the rolling one still holds the 100 tokens.
    refused = store.reserve_now(ask(start + 60.5, 100, tokens_per_minute=100))
    assert refused.status == OVER_TOKENS
    assert 58_000 < refused.wait_ms <= 59_000  # until the slot of start + 59 leaves the window
    assert store.reserve_now(ask(start + 119.5, 100, tokens_per_minute=100)).status == ACCEPTED


def test_settling_gives_back_what_the_estimate_overstated() -> None:
    store = MemoryLimitStore()
    first = ask(100.0, 80, tokens_per_minute=100)
    assert store.reserve_now(first).remaining_tokens == 20
    assert store.reserve_now(ask(100.5, 80, tokens_per_minute=100)).status == OVER_TOKENS
    asyncio.run(store.settle(first, 10 - 80))  # the call used 10
    assert store.reserve_now(ask(101.0, 80, tokens_per_minute=100)).remaining_tokens == 10


def test_the_quota_refuses_until_the_period_ends() -> None:
    store = MemoryLimitStore()
    ten = datetime(2026, 11, 30, 10, 0, tzinfo=UTC).timestamp()
    hour = {"quota": 100, "quota_period": "2026113010", "quota_end_ms": int((ten + 3600) * 1000)}
    assert store.reserve_now(ask(ten + 10, 100, **hour)).status == ACCEPTED
    refused = store.reserve_now(ask(ten + 3599, 1, **hour))
    assert refused.status == OVER_QUOTA and refused.wait_ms == 1000
    assert period_bounds("Hourly", ten + 3600)[0] == datetime(2026, 11, 30, 11, tzinfo=UTC)
    following = {"quota": 100, "quota_period": "2026113011", "quota_end_ms": int((ten + 7200) * 1000)}
    assert store.reserve_now(ask(ten + 3600, 1, **following)).status == ACCEPTED


@pytest.mark.parametrize(
    ("period", "start", "end"),
    [
        ("Daily", datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
        ("Weekly", datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 7, tzinfo=UTC)),  # a Monday
        ("Monthly", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
    ],
)
def test_quota_periods_follow_the_utc_calendar(period: str, start: datetime, end: datetime) -> None:
    assert period_bounds(period, datetime(2026, 11, 30, 17, 5, tzinfo=UTC).timestamp()) == (start, end)


def test_the_estimate_counts_prompt_images_and_the_completion_ceiling() -> None:
    assert estimate_tokens(CHAT) == 204
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}
    with_image = {"messages": [{"role": "user", "content": [{"type": "text", "text": "abcd"}, image]}]}
    assert estimate_tokens({**with_image, "max_completion_tokens": 10}) == 1 + 4 + 85 + 10
    assert estimate_tokens({"messages": []}) == 1000  # no max_tokens: the default completion estimate


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class DownStore:
    """A shared store that cannot be reached, until `up`."""

    def __init__(self) -> None:
        self.up = False
        self.inner = MemoryLimitStore()

    async def reserve(self, asked: Ask) -> Any:
        if not self.up:
            raise ConnectionError("refused")
        return await self.inner.reserve(asked)

    async def settle(self, asked: Ask, delta: int) -> None:
        await self.inner.settle(asked, delta)


def limited(store: Any, mode: str, clock: Clock) -> Limiter:
    rules = parse_rules([{"caller": "*", "deployment": "*", "tokensPerMinute": 500, "requestsPerMinute": 2}])
    return Limiter(rules, store, when_down=mode, clock=clock)


def test_store_down_local_keeps_enforcing_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    clock, store = Clock(time.time()), DownStore()
    limiter = limited(store, "local", clock)
    caplog.set_level(logging.WARNING, "limits")

    async def run() -> None:
        hold = await limiter.reserve([ALICE], [], "main", "chat", CHAT)
        assert hold is not None and hold.headers() == {REMAINING_TOKENS: "296", REMAINING_REQUESTS: "1"}
        await limiter.reserve([ALICE], [], "main", "chat", CHAT)
        with pytest.raises(RateLimitExceeded) as refused:  # the local counters still hold the limit
            await limiter.reserve([ALICE], [], "main", "chat", CHAT)
        assert "tokensPerMinute" in refused.value.message and refused.value.headers["Retry-After"] == "60"
        store.up = True
        clock.now += 61  # past the local window, and past the wait before Redis is tried again
        await limiter.reserve([ALICE], [], "main", "chat", CHAT)

    asyncio.run(run())
    messages = [record.getMessage() for record in caplog.records]
    assert sum("cannot be reached" in message for message in messages) == 1, messages
    assert "LIMITS_WHEN_STORE_DOWN=local" in messages[0]
    assert any("reachable again" in message for message in messages)


def test_store_down_closed_refuses_with_503() -> None:
    limiter = limited(DownStore(), "closed", Clock(time.time()))
    with pytest.raises(LimitStoreUnavailable) as refused:
        asyncio.run(limiter.reserve([ALICE], [], "main", "chat", CHAT))
    assert refused.value.status == 503 and "LIMITS_WHEN_STORE_DOWN=closed" in refused.value.message


def test_the_quota_answer_names_the_period_end() -> None:
    rules = parse_rules([{"caller": ALICE, "tokenQuota": {"tokens": 10, "period": "Daily"}}])
    clock = Clock(datetime(2026, 11, 30, 23, 0, tzinfo=UTC).timestamp())
    limiter = Limiter(rules, None, clock=clock)

    async def run() -> None:
        await limiter.reserve([ALICE], [], "main", "chat", CHAT)
        with pytest.raises(QuotaExceeded) as refused:
            await limiter.reserve([ALICE], [], "main", "chat", CHAT)
        assert refused.value.status == 403 and "until 2026-12-01T00:00:00Z" in refused.value.message
        assert refused.value.headers[REMAINING_TOKENS] == "0"

    asyncio.run(run())


def _jwt(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def test_the_entra_credential_provider_uses_the_apps_credential_for_redis() -> None:
    from azure.core.credentials import AccessToken
    from redis.credentials import StreamingCredentialProvider

    from services.redis_client import REDIS_SCOPE, entra_credential_provider

    token = _jwt({"oid": "7f1d0000-0000-4000-8000-00000000beef", "exp": int(time.time()) + 3600})
    asked: list[tuple[str, ...]] = []

    class AppCredential:
        def get_token(self, *scopes: str, **_: Any) -> AccessToken:
            asked.append(scopes)
            return AccessToken(token, int(time.time()) + 3600)

    provider = entra_credential_provider(AppCredential())
    assert isinstance(provider, StreamingCredentialProvider)
    # redis-py authenticates each connection with (user name, password): the identity's object id and its token.
    assert provider.get_credentials() == ("7f1d0000-0000-4000-8000-00000000beef", token)
    assert asked and asked[0] == (REDIS_SCOPE,)


def test_the_redis_client_uses_entra_over_tls_unless_given_a_local_password() -> None:
    from redis_entraid.cred_provider import EntraIdCredentialsProvider

    from services.redis_client import make_redis

    class AppCredential:
        def get_token(self, *scopes: str, **_: Any) -> Any:
            raise AssertionError("no token is fetched before the first command")

    azure = make_redis(
        "cache.swedencentral.redis.azure.net:10000",
        credential=AppCredential(),
        password=None,
        ssl=True,
        timeout_seconds=1,
    )
    options = azure.connection_pool.connection_kwargs
    assert (options["host"], options["port"]) == ("cache.swedencentral.redis.azure.net", 10000)
    assert isinstance(options["credential_provider"], EntraIdCredentialsProvider)
    assert options["password"] is None and azure.connection_pool.connection_class.__name__ == "SSLConnection"
    stand_in = "local-only"  # pragma: allowlist secret
    local = make_redis("127.0.0.1:6380", credential=None, password=stand_in, ssl=False, timeout_seconds=1)
    assert local.connection_pool.connection_kwargs["password"] == stand_in
    assert local.connection_pool.connection_kwargs.get("credential_provider") is None
