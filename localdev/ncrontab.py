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
        """The first matching second after `when`: whole months, days, hours and minutes that cannot match are
        skipped at once."""
        seconds, minutes, hours, days, months, weekdays = self.fields
        candidate = when.replace(microsecond=0) + timedelta(seconds=1)
        limit = candidate + timedelta(days=366 * 4)
        while candidate < limit:
            if candidate.month not in months:
                year, month = divmod(candidate.month, 12)  # the first day of the next month
                candidate = candidate.replace(
                    year=candidate.year + year, month=month + 1, day=1, hour=0, minute=0, second=0
                )
            elif candidate.day not in days or (candidate.weekday() + 1) % 7 not in weekdays:
                candidate = candidate.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif candidate.hour not in hours:
                candidate = candidate.replace(minute=0, second=0) + timedelta(hours=1)
            elif candidate.minute not in minutes:
                candidate = candidate.replace(second=0) + timedelta(minutes=1)
            elif candidate.second not in seconds:
                candidate += timedelta(seconds=1)
            else:
                return candidate
        raise ValueError("the schedule never fires")


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
