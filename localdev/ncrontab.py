"""NCRONTAB, the six-field cron of Azure Functions timer triggers: `{second} {minute} {hour} {day} {month} {weekday}`.

Each field takes `*`, a number, a range `a-b`, a list `a,b`, and a step `*/n` or `a-b/n`; weekday 0 is Sunday.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

_BOUNDS = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_NAMES = ("second", "minute", "hour", "day", "month", "weekday")


@dataclass(frozen=True)
class Schedule:
    fields: tuple[frozenset[int], ...]

    def matches(self, when: datetime) -> bool:
        weekday = (when.weekday() + 1) % 7  # Python: Monday 0; cron: Sunday 0
        values = (when.second, when.minute, when.hour, when.day, when.month, weekday)
        return all(value in allowed for value, allowed in zip(values, self.fields, strict=True))

    def next_after(self, when: datetime) -> datetime:
        """The first matching second after `when` (searched minute by minute, then second by second)."""
        candidate = when.replace(microsecond=0) + timedelta(seconds=1)
        limit = candidate + timedelta(days=366 * 4)
        while candidate < limit:
            if not self._minute_matches(candidate):
                candidate = candidate.replace(second=0) + timedelta(minutes=1)
                continue
            if candidate.second in self.fields[0]:
                return candidate
            candidate += timedelta(seconds=1)
        raise ValueError("the schedule never fires")

    def _minute_matches(self, when: datetime) -> bool:
        return self.matches(when.replace(second=min(self.fields[0])))


def parse(expression: str) -> Schedule:
    parts = expression.split()
    if len(parts) != 6:
        raise ValueError(f"'{expression}' is not NCRONTAB: six fields (second minute hour day month weekday)")
    fields = zip(parts, _BOUNDS, _NAMES, strict=True)
    return Schedule(tuple(_field(part, low, high, name) for part, (low, high), name in fields))


def _field(text: str, low: int, high: int, name: str) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        base, _, step_text = item.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            start, end = low, high
        elif "-" in base:
            start, end = (int(value) for value in base.split("-", 1))
        else:
            start = int(base)
            end = high if step_text else start
        if not (low <= start <= end <= high) or step < 1:
            raise ValueError(f"the {name} field '{text}' is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)
