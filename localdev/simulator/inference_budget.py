"""`x-ratelimit-remaining-requests` / `-tokens` per deployment: plausible, reported, never enforced.

Sizes follow the service's rule for older chat models (one capacity unit is 1,000 tokens and 6
requests per minute); buckets refill continuously. Real throttling is what faults are for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

REQUESTS_PER_UNIT = 6
TOKENS_PER_UNIT = 1_000
_WINDOW_SECONDS = 60.0


@dataclass
class _Bucket:
    level: float
    updated: float

    def spend(self, size: float, amount: float, now: float) -> int:
        refilled = self.level + (now - self.updated) * size / _WINDOW_SECONDS
        self.level = max(min(size, refilled) - amount, 0.0)
        self.updated = now
        return int(self.level)


class InferenceBudget:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def spend(self, deployment_key: str, capacity: int, tokens: int) -> tuple[int, int]:
        """Remaining (requests, tokens) after one call that used `tokens`."""
        now = self._clock()
        remaining = []
        for kind, size, amount in (
            ("requests", capacity * REQUESTS_PER_UNIT, 1),
            ("tokens", capacity * TOKENS_PER_UNIT, tokens),
        ):
            bucket = self._buckets.setdefault((deployment_key, kind), _Bucket(float(size), now))
            remaining.append(bucket.spend(float(size), float(amount), now))
        return remaining[0], remaining[1]
