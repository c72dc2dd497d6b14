"""The local host's NCRONTAB schedules (six fields, seconds first), as Azure Functions timer triggers read them."""

from __future__ import annotations

from datetime import datetime

import pytest

from localdev.ncrontab import parse
from localdev.triggers import timespan_seconds


@pytest.mark.parametrize(
    ("expression", "after", "due"),
    [
        ("0 */15 * * * *", datetime(2026, 1, 1, 10, 7, 3), datetime(2026, 1, 1, 10, 15, 0)),
        ("*/5 * * * * *", datetime(2026, 1, 1, 10, 7, 3), datetime(2026, 1, 1, 10, 7, 5)),
        ("30 0 9 * * 1-5", datetime(2026, 1, 2, 9, 0, 30), datetime(2026, 1, 5, 9, 0, 30)),  # Fri -> Mon
        ("0 0 0 1 1 *", datetime(2026, 6, 1), datetime(2027, 1, 1)),
    ],
)
def test_next_occurrence(expression: str, after: datetime, due: datetime) -> None:
    assert parse(expression).next_after(after) == due


@pytest.mark.parametrize("expression", ["*/15 * * * *", "61 * * * * *", "0 0 25 * * *", "a b c d e f"])
def test_invalid_schedules_are_refused(expression: str) -> None:
    with pytest.raises(ValueError):
        parse(expression)


def test_host_json_timespans() -> None:
    assert timespan_seconds("00:01:00") == 60 and timespan_seconds("00:00:00.5") == 0.5
