"""The usage ledger's rows and writer, GET /usage's sums, and the metrics' dimensions (never the caller)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.errors import UsageUnavailable, ValidationError
from services.inference import CallRecord
from services.ledger import SHARDS, Ledger, entity_of, partition_key
from services.metrics import Metrics
from services.usage import query_usage, usage_filter

WHEN = datetime(2026, 11, 30, 16, 5, tzinfo=UTC)


def record(**changes: Any) -> CallRecord:
    done = CallRecord("main", "support-bot", "chat.completions", caller="team-a", request_id="req-1")
    done.status, done.prompt_tokens, done.completion_tokens, done.total_tokens = 200, 10, 5, 15
    done.served_by, done.model, done.region = "main/support-bot", "gpt-4o", "swedencentral"
    for name, value in changes.items():
        setattr(done, name, value)
    return done


def test_a_row_carries_the_call_and_a_partition_of_its_hour() -> None:
    row = entity_of(record(), WHEN)
    assert row["PartitionKey"].startswith("2026113016-")
    assert 0 <= int(row["PartitionKey"].rsplit("-", 1)[1]) < SHARDS
    assert {k: row[k] for k in ("caller", "account", "deployment", "totalTokens", "status", "servedBy")} == {
        "caller": "team-a",
        "account": "main",
        "deployment": "support-bot",
        "totalTokens": 15,
        "status": 200,
        "servedBy": "main/support-bot",
    }
    shards = {partition_key(WHEN, f"row-{n}") for n in range(200)}
    assert len(shards) == SHARDS  # writes spread over every shard of the hour


class Table:
    table_name = "usage"

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.batches: list[list[Any]] = []

    def create_table(self) -> None:
        pass

    def submit_transaction(self, operations: list[Any]) -> None:
        if self.fail:
            raise OSError("storage down")
        self.batches.append(operations)

    def close(self) -> None:
        pass


def test_rows_go_in_batches_of_one_partition_and_failures_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    table = Table()
    ledger = Ledger(table, flush_seconds=60)
    for _ in range(250):
        ledger.add(record())
    ledger.flush()
    assert ledger.written == 250 and all(len(batch) <= 100 for batch in table.batches)
    assert all(len({row["PartitionKey"] for _, row in batch}) == 1 for batch in table.batches)
    table.fail = True
    ledger.add(record())
    ledger.add(record())
    ledger.flush()
    assert ledger.lost == 2
    assert any("2 rows lost" in message for message in caplog.messages)
    full = Ledger(Table(), flush_seconds=60, max_buffered=1)
    full.add(record())
    full.add(record())  # never blocks: over the bound, the row is counted as lost
    assert full.lost == 1
    ledger.close()
    full.close()


class Rows:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.asked: tuple[str, dict[str, Any]] | None = None

    def query_entities(self, text: str, *, parameters: dict[str, Any], select: list[str]) -> list[dict[str, Any]]:
        self.asked = (text, parameters)
        return [{key: row.get(key) for key in select} for row in self.rows]


def test_usage_sums_per_group_largest_first() -> None:
    rows = Rows(
        [
            {"caller": "a", "promptTokens": 10, "completionTokens": 5, "totalTokens": 15},
            {"caller": "b", "promptTokens": 100, "completionTokens": 50, "totalTokens": 150},
            {"caller": "a", "promptTokens": 1, "completionTokens": 1, "totalTokens": 2},
        ]
    )
    answer = query_usage(rows, start="2026-11-01T00:00:00Z", end="2026-12-01T00:00:00Z", group_by="caller")
    assert answer["value"] == [
        {"caller": "b", "requests": 1, "promptTokens": 100, "completionTokens": 50, "totalTokens": 150},
        {"caller": "a", "requests": 2, "promptTokens": 11, "completionTokens": 6, "totalTokens": 17},
    ]
    assert rows.asked is not None and rows.asked[1]["low"] == "2026110100" and rows.asked[1]["high"] == "2026113023~"


def test_a_months_partitions_are_one_key_range() -> None:
    _, parameters = usage_filter(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 30, 16, 30, tzinfo=UTC))
    assert (parameters["low"], parameters["high"]) == ("2026110100", "2026113016~")
    assert "2026113016-7" < parameters["high"] < "2026113017-0"


@pytest.mark.parametrize(
    ("query", "target"),
    [
        ({"group_by": "team"}, "groupBy"),
        ({"group_by": ""}, "groupBy"),
        ({"start": "yesterday"}, "from"),
        ({"start": "2027-01-01T00:00:00Z"}, "from"),
        ({"end": ""}, "to"),  # given but empty is not "now"
    ],
)
def test_bad_usage_queries_are_400(query: dict[str, str], target: str) -> None:
    arguments: dict[str, Any] = {"start": None, "end": "2026-12-01T00:00:00Z", "group_by": None, **query}
    with pytest.raises(ValidationError) as refused:
        query_usage(Rows([]), **arguments)
    assert refused.value.target == target


def test_usage_without_storage_is_503() -> None:
    with pytest.raises(UsageUnavailable):
        query_usage(None, start=None, end=None, group_by=None)


class Meter:
    def __init__(self) -> None:
        self.points: list[tuple[str, int, dict[str, str]]] = []

    def create_counter(self, name: str, **_: Any) -> Any:
        meter = self

        class Counter:
            def add(self, amount: int, attributes: dict[str, str]) -> None:
                meter.points.append((name, amount, attributes))

        return Counter()


def test_metrics_count_requests_and_tokens_by_deployment_model_status_and_region_never_caller() -> None:
    meter = Meter()
    Metrics(meter).record(record(status=429, prompt_tokens=None, completion_tokens=None))
    Metrics(meter).record(record())
    names = [(name, amount) for name, amount, _ in meter.points]
    assert names == [
        ("gateway.inference.requests", 1),
        ("gateway.inference.requests", 1),
        ("gateway.inference.tokens", 10),
        ("gateway.inference.tokens", 5),
    ]
    assert meter.points[0][2] == {
        "deployment": "support-bot",
        "model": "gpt-4o",
        "status_class": "4xx",
        "region": "swedencentral",
    }
    assert all("caller" not in attributes and "team-a" not in attributes.values() for *_, attributes in meter.points)
