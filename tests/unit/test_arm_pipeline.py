"""The ARM client's pipeline as ARM sees it: headers, token use, retried methods, spans, logs, TLS rule."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from opentelemetry import trace

from services.arm import ArmClient
from services.errors import ConfigurationError, ConflictError, IdentityUnavailable, UpstreamError, UpstreamUnavailable
from services.settings import ArmTuning
from tests.unit.fake_arm import (
    ARM,
    TOKEN,
    Call,
    FakeClock,
    FakeCredential,
    Reply,
    ScriptedTransport,
    make_client,
    queue,
)

OK: Reply = (200, {}, {"name": "d1", "properties": {"provisioningState": "Succeeded"}})
UNAVAILABLE: Reply = (503, {}, {"error": {"code": "ServiceUnavailable", "message": "busy"}})


def test_generated_request_id_when_the_caller_gave_none() -> None:
    client, transport, _ = make_client(queue(OK))
    client.send("GET", client.url("/x"))
    client.send("GET", client.url("/x"), request_id="req-7")
    first, second = transport.calls
    assert len(first.headers["x-ms-client-request-id"]) >= 32
    assert second.headers["x-ms-client-request-id"] == "req-7"
    assert first.headers["Accept"] == "application/json"
    assert "aoai-deployments-functions" in first.headers["User-Agent"]


def test_token_is_fetched_once_for_many_calls_and_sent_on_each() -> None:
    credential = FakeCredential()
    client, transport, _ = make_client(queue(UNAVAILABLE, OK), credential=credential)
    for _ in range(5):
        client.send("GET", client.url("/x"))
    assert len(transport.calls) == 6  # the first call was retried once
    assert all(call.headers["Authorization"] == f"Bearer {TOKEN}" for call in transport.calls)
    assert credential.scopes == [(f"{ARM}/.default",)]


def test_token_failure_is_identity_unavailable_and_nothing_is_sent() -> None:
    class Broken:
        def get_token_info(self, *scopes: str, options: Any = None) -> Any:
            raise ClientAuthenticationError("ManagedIdentityCredential: no identity endpoint")

    client, transport, _ = make_client(queue(OK), credential=Broken())
    with pytest.raises(IdentityUnavailable) as raised:
        client.send("GET", client.url("/x"))
    assert raised.value.status == 503
    assert "no identity endpoint" in raised.value.message
    assert transport.calls == []


@pytest.mark.parametrize(("method", "status"), [("PATCH", 503), ("PATCH", 429), ("PUT", 503), ("DELETE", 503)])
def test_mutations_are_retried_on_transient_statuses(method: str, status: int) -> None:
    client, transport, clock = make_client(queue((status, {"Retry-After": "2"}, None), OK))
    assert client.send(method, client.url("/x"), json={"sku": {"capacity": 2}}).status == 200
    assert [call.method for call in transport.calls] == [method, method]
    assert transport.calls[1].body == {"sku": {"capacity": 2}}
    assert clock.sleeps == [2.0]


def test_backoff_without_retry_after_grows_with_jitter() -> None:
    tuning = ArmTuning(retry_total=3, retry_backoff_seconds=1.0, retry_backoff_max_seconds=3.0)
    client, transport, clock = make_client(queue(UNAVAILABLE), tuning=tuning)
    assert client.send("GET", client.url("/x")).status == 503
    assert len(transport.calls) == 4
    for slept, base in zip(clock.sleeps, [1.0, 2.0, 3.0], strict=True):
        assert 0.8 * base <= slept <= base


def test_a_4xx_with_retry_after_is_not_retried() -> None:
    client, transport, _ = make_client(queue((409, {"Retry-After": "1"}, {"error": {"code": "Conflict"}})))
    assert client.send("PUT", client.url("/x"), json={}, retry_conflict=True).status == 409
    assert len(transport.calls) == 1


def test_conflict_error_tells_when_to_come_back() -> None:
    conflict = (409, {}, {"error": {"code": "requestconflict", "message": "Another operation is running."}})
    client, transport, clock = make_client(queue(conflict), tuning=ArmTuning(conflict_retry_seconds=20))
    with pytest.raises(ConflictError) as raised:
        client.send("PATCH", client.url("/x"), json={}, retry_conflict=True)
    assert raised.value.headers["Retry-After"] == "6"
    assert "Another operation is running." in raised.value.message
    assert "retried for 20 s" in raised.value.message
    assert all(slept >= 0.5 for slept in clock.sleeps)
    assert sum(clock.sleeps) <= 20
    assert len(transport.calls) == len(clock.sleeps) + 1


def test_conflict_wait_sees_transient_failures_retried_inside_it() -> None:
    conflict = (409, {}, {"error": {"code": "RequestConflict", "message": "busy"}})
    client, transport, _ = make_client(queue(conflict, UNAVAILABLE, OK))
    assert client.send("PUT", client.url("/x"), json={}, retry_conflict=True).status == 200
    assert len(transport.calls) == 3


def test_read_timeouts_are_retried_then_unavailable() -> None:
    def slow(_: Call) -> Reply:
        raise requests.ReadTimeout("read timed out")

    client, transport, clock = make_client(slow, tuning=ArmTuning(retry_total=1))
    with pytest.raises(UpstreamUnavailable) as raised:
        client.send("PUT", client.url("/x"), json={})
    assert raised.value.headers["Retry-After"] == "10"
    assert len(transport.calls) == 2
    assert len(clock.sleeps) == 1


def test_connection_errors_stop_at_the_time_budget() -> None:
    def refuse(_: Call) -> Reply:
        raise requests.ConnectionError("refused")

    tuning = ArmTuning(retry_total=10, retry_backoff_seconds=4, retry_budget_seconds=10)
    client, transport, clock = make_client(refuse, tuning=tuning)
    with pytest.raises(UpstreamUnavailable):
        client.send("GET", client.url("/x"))
    assert sum(clock.sleeps) <= 10
    assert len(transport.calls) == len(clock.sleeps) + 1 < 11


def test_other_hosts_get_no_token_even_from_a_next_link() -> None:
    def handler(call: Call) -> Reply:
        return 200, {}, {"value": [], "nextLink": "https://elsewhere.example.test/list?$skipToken=1"}

    credential = FakeCredential()
    client, transport, _ = make_client(handler, credential=credential)
    with pytest.raises(UpstreamError) as raised:
        list(client.pages(client.url("/list")))
    assert raised.value.status == 502
    assert "elsewhere.example.test" in raised.value.message
    assert [call.path for call in transport.calls] == ["/list"]


def test_plain_http_only_to_this_machine() -> None:
    clock = FakeClock()
    client = ArmClient(
        "http://127.0.0.1:8123",
        "2024-10-01",
        FakeCredential(),
        "https://management.azure.com/.default",
        tuning=ArmTuning(),
        transport=ScriptedTransport(queue(OK), clock),
        clock=clock,
    )
    assert client.send("GET", client.url("/x")).status == 200
    with pytest.raises(ConfigurationError):
        ArmClient("http://arm.example.test", "v", FakeCredential(), "s", tuning=ArmTuning())


def test_one_log_line_per_attempt_and_never_the_token(caplog: pytest.LogCaptureFixture) -> None:
    client, _, _ = make_client(queue((503, {"Retry-After": "1"}, None), (200, {"x-ms-request-id": "arm-9"}, {})))
    with caplog.at_level(logging.INFO, logger="services.arm"):
        client.send("GET", client.url("/subscriptions/s/x"), request_id="req-1")
    lines = [record.getMessage() for record in caplog.records if record.name == "services.arm"]
    attempts = [line for line in lines if "->" in line]
    assert len(attempts) == 2
    assert attempts[1].startswith("ARM GET /subscriptions/s/x -> 200 in ")
    assert "x-ms-request-id=arm-9" in attempts[1]
    assert not any(TOKEN in record.getMessage() for record in caplog.records)


class _Span(trace.NonRecordingSpan):
    def __init__(self, name: str, context: trace.SpanContext, finished: list[_Span]) -> None:
        super().__init__(context)
        self.name = name
        self.attributes: dict[str, Any] = {}
        self._finished = finished

    def set_attributes(self, attributes: Any) -> None:
        self.attributes.update(attributes)

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def end(self, end_time: int | None = None) -> None:
        self._finished.append(self)


class _Tracer(trace.NoOpTracer):
    def __init__(self, finished: list[_Span]) -> None:
        self.finished = finished

    def start_span(self, name: str, *args: Any, attributes: Any = None, **kwargs: Any) -> trace.Span:
        number = len(self.finished) + 1
        context = trace.SpanContext(0xABC, number, is_remote=False, trace_flags=trace.TraceFlags(1))
        span = _Span(name, context, self.finished)
        span.set_attributes(attributes or {})
        return span


class _Provider(trace.TracerProvider):
    def __init__(self) -> None:
        self.finished: list[_Span] = []

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        return _Tracer(self.finished)


@pytest.fixture
def tracer_provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Provider]:
    from azure.core import instrumentation

    provider = _Provider()
    monkeypatch.delenv("AZURE_TRACING_ENABLED", raising=False)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    instrumentation._get_tracer_cached.cache_clear()
    yield provider
    instrumentation._get_tracer_cached.cache_clear()


def _spans(spans: Sequence[_Span]) -> list[tuple[str, Any, Any]]:
    return [
        (s.name, s.attributes.get("http.response.status_code"), s.attributes.get("az.client_request_id")) for s in spans
    ]


def test_each_attempt_is_a_span_once_opentelemetry_is_set_up(tracer_provider: _Provider) -> None:
    client, transport, _ = make_client(queue((503, {"Retry-After": "1"}, None), OK))
    client.send("GET", client.url("/x"), request_id="req-1")
    assert _spans(tracer_provider.finished) == [("GET", 503, "req-1"), ("GET", 200, "req-1")]
    assert transport.calls[0].headers["traceparent"].startswith("00-00000000000000000000000000000abc-")


def test_no_span_and_no_trace_header_without_opentelemetry() -> None:
    client, transport, _ = make_client(queue(OK))
    client.send("GET", client.url("/x"))
    assert "traceparent" not in transport.calls[0].headers
