"""Per-caller limit rules (`INFERENCE_LIMITS`): parsing, and choosing the one rule that applies to a call.

A rule names a caller (a principal's object id or app id, an app role, or `*`) and a deployment
(`alias/deployment`, `alias/*`, a failover group's name, or `*`), with any of `tokensPerMinute`,
`requestsPerMinute` and `tokenQuota` (`{"tokens": N, "period": "Hourly" | "Daily" | "Weekly" | "Monthly"}`).
The most specific rule wins: a named caller beats a role beats `*`, then a named deployment beats `alias/*`
beats `*` (the caller first).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

PERIODS = ("Hourly", "Daily", "Weekly", "Monthly")
_KEYS = frozenset({"caller", "deployment", "tokensPerMinute", "requestsPerMinute", "tokenQuota"})
RULES_EXAMPLE = '[{"caller": "*", "deployment": "*", "tokensPerMinute": 10000, "requestsPerMinute": 60}]'


class RuleError(ValueError):
    """A rule the settings refuse; the message names the rule and the field."""


@dataclass(frozen=True)
class LimitRule:
    caller: str
    deployment: str
    tokens_per_minute: int | None = None
    requests_per_minute: int | None = None
    quota_tokens: int | None = None
    quota_period: str | None = None
    index: int = 0  # position in INFERENCE_LIMITS, part of the counters' key

    @property
    def label(self) -> str:
        return f"caller '{self.caller}', deployment '{self.deployment}'"

    @property
    def has_limits(self) -> bool:
        return bool(self.tokens_per_minute or self.requests_per_minute or self.quota_tokens)


def parse_rules(value: Any) -> list[LimitRule]:
    if not isinstance(value, list):
        raise RuleError(f"must be a JSON list of rules, for example {RULES_EXAMPLE}")
    return [_rule(index, entry) for index, entry in enumerate(value)]


def _rule(index: int, entry: Any) -> LimitRule:
    where = f"rule {index}"
    if not isinstance(entry, dict):
        raise RuleError(f"{where} must be an object, for example {RULES_EXAMPLE}")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise RuleError(f"{where} has unknown keys {unknown}; allowed: {sorted(_KEYS)}")
    caller, deployment = entry.get("caller", "*"), entry.get("deployment", "*")
    for name, text in (("caller", caller), ("deployment", deployment)):
        if not isinstance(text, str) or not text.strip():
            raise RuleError(f"{where}: '{name}' must be a non-empty string ('*' for any)")
    if deployment.count("/") > 1 or deployment.startswith("/") or deployment.endswith("/"):
        raise RuleError(f"{where}: 'deployment' must be 'alias/deployment', 'alias/*', a group name or '*'")
    quota = entry.get("tokenQuota")
    quota_tokens = quota_period = None
    if quota is not None:
        if not isinstance(quota, dict) or set(quota) != {"tokens", "period"}:
            raise RuleError(f'{where}: \'tokenQuota\' must be {{"tokens": N, "period": "Daily"}}')
        quota_tokens = _positive(where, "tokenQuota.tokens", quota["tokens"])
        period = quota["period"]
        match = next((p for p in PERIODS if isinstance(period, str) and p.lower() == period.lower()), None)
        if match is None:
            raise RuleError(f"{where}: 'tokenQuota.period' must be one of {', '.join(PERIODS)}")
        quota_period = match
    rule = LimitRule(
        caller=caller.strip(),
        deployment=deployment.strip(),
        tokens_per_minute=_positive(where, "tokensPerMinute", entry.get("tokensPerMinute")),
        requests_per_minute=_positive(where, "requestsPerMinute", entry.get("requestsPerMinute")),
        quota_tokens=quota_tokens,
        quota_period=quota_period,
        index=index,
    )
    if not rule.has_limits:
        raise RuleError(f"{where} sets no limit: give tokensPerMinute, requestsPerMinute or tokenQuota")
    return rule


def _positive(where: str, name: str, value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise RuleError(f"{where}: '{name}' must be a whole number of at least 1")
    return value


def caller_rank(rule: LimitRule, caller_ids: Iterable[str], roles: Iterable[str]) -> int | None:
    """2 for a named caller, 1 for one of the caller's roles, 0 for `*`, None when the rule is not theirs."""
    if rule.caller == "*":
        return 0
    if rule.caller in caller_ids:
        return 2
    return 1 if rule.caller in roles else None


def deployment_rank(rule: LimitRule, alias: str | None, deployment: str) -> int | None:
    """2 for `alias/deployment` (or the group's name), 1 for `alias/*`, 0 for `*`, None when it does not apply."""
    pattern = rule.deployment
    if pattern == "*":
        return 0
    if alias is None:  # a failover group: named by itself
        return 2 if pattern == deployment else None
    if pattern == f"{alias}/{deployment}":
        return 2
    return 1 if pattern == f"{alias}/*" else None


def applicable_rule(
    rules: Iterable[LimitRule],
    caller_ids: Iterable[str],
    roles: Iterable[str],
    alias: str | None,
    deployment: str,
) -> LimitRule | None:
    """The most specific rule for this caller and deployment (the earlier one on a tie), or None."""
    ids, granted = frozenset(caller_ids), frozenset(roles)
    best: tuple[int, int] | None = None
    chosen = None
    for rule in rules:
        by_caller = caller_rank(rule, ids, granted)
        by_deployment = deployment_rank(rule, alias, deployment) if by_caller is not None else None
        if by_caller is None or by_deployment is None:
            continue
        rank = (by_caller, by_deployment)
        if best is None or rank > best:
            best, chosen = rank, rule
    return chosen


def period_bounds(period: str, now: float) -> tuple[datetime, datetime]:
    """The UTC period (start, end) that `now` (epoch seconds) falls in: hours, days, ISO weeks, months."""
    moment = datetime.fromtimestamp(now, UTC)
    if period == "Hourly":
        start = moment.replace(minute=0, second=0, microsecond=0)
        return start, start + timedelta(hours=1)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "Daily":
        return day, day + timedelta(days=1)
    if period == "Weekly":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
