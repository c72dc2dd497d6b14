"""ARM transport: retry policy, conflict retry, paging, LRO polling, over a scripted HTTP transport."""

from __future__ import annotations

import email.utils
import time

import pytest
from requests.structures import CaseInsensitiveDict

from services.arm import ArmClient, ArmResponse
from services.arm_policies import BoundedRetryPolicy
from services.errors import ConflictError, IdentityUnavailable, UpstreamError, UpstreamUnavailable
from services.lro import LongRunningOperation
from services.settings import ArmTuning
from services.web import retry_after_seconds
from tests.unit.fake_arm import ARM, TOKEN, Call, FakeCredential, Reply, make_client, queue

CONFLICT = (409, {}, {"error": {"code": "RequestConflict", "message": "Another operation is being performed."}})
OK = (200, {}, {"name": "d1", "properties": {"provisioningState": "Succeeded"}})


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds({"Retry-After": "7"}) == 7
    assert retry_after_seconds({"retry-after-ms": "250"}) == 0.25
    assert retry_after_seconds({"x-ms-retry-after-ms": "1500", "Retry-After": "9"}) == 1.5
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= (retry_after_seconds({"Retry-After": future}) or 0) <= 30
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_backoff_grows_and_is_capped() -> None:
    policy = BoundedRetryPolicy(backoff=1.0, backoff_max=5.0, jitter=False)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.delay(1, {"retry-after-ms": "250"}) == 0.25
    jittered = BoundedRetryPolicy(backoff=1.0, backoff_max=5.0)
    assert all(0.8 * 4 <= jittered.delay(3) <= 4.0 for _ in range(50))


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retried_then_succeed(status: int) -> None:
    client, transport, clock = make_client(queue((status, {"Retry-After": "3"}, {"error": {"code": "X"}}), OK))
    response = client.send("GET", client.url("/x"))
    assert response.status == 200
    assert len(transport.calls) == 2
    assert clock.sleeps == [3.0]


def test_retries_are_bounded_by_count() -> None:
    tuning = ArmTuning(retry_total=2, retry_backoff_seconds=0.1)
    client, transport, _ = make_client(queue((503, {}, {"error": {"code": "ServiceUnavailable"}})), tuning=tuning)
    response = client.send("GET", client.url("/x"))
    assert response.status == 503
    assert len(transport.calls) == 3


def test_retries_are_bounded_by_time_budget() -> None:
    tuning = ArmTuning(retry_total=10, retry_budget_seconds=5)
    client, transport, clock = make_client(queue((429, {"Retry-After": "4"}, None)), tuning=tuning)
    response = client.send("GET", client.url("/x"))
    assert response.status == 429  # a second 4 s wait would pass the 5 s budget
    assert len(transport.calls) == 2
    assert sum(clock.sleeps) == 4


def test_client_errors_are_not_retried() -> None:
    client, transport, _ = make_client(queue((400, {}, {"error": {"code": "InsufficientQuota", "message": "full"}})))
    assert client.send("PUT", client.url("/x"), json={}).status == 400
    assert len(transport.calls) == 1


def test_request_conflict_is_retried_when_asked_then_surfaces_as_409() -> None:
    tuning = ArmTuning(conflict_retry_seconds=10)
    client, transport, clock = make_client(queue(CONFLICT), tuning=tuning)
    with pytest.raises(ConflictError) as raised:
        client.send("PUT", client.url("/x"), json={}, retry_conflict=True)
    assert raised.value.status == 409
    assert "Retry-After" in raised.value.headers
    assert len(transport.calls) > 2
    assert sum(clock.sleeps) <= 10


def test_request_conflict_then_success() -> None:
    client, transport, _ = make_client(queue(CONFLICT, CONFLICT, OK))
    assert client.send("DELETE", client.url("/x"), retry_conflict=True).status == 200
    assert len(transport.calls) == 3


def test_conflict_not_retried_for_reads() -> None:
    client, transport, _ = make_client(queue(CONFLICT))
    assert client.send("GET", client.url("/x")).status == 409
    assert len(transport.calls) == 1


def test_every_call_carries_bearer_api_version_and_client_request_id() -> None:
    client, transport, _ = make_client(queue(OK))
    client.send("GET", client.url("/subscriptions/s/x"), request_id="req-1")
    call = transport.calls[0]
    assert call.headers["Authorization"] == f"Bearer {TOKEN}"
    assert call.headers["x-ms-client-request-id"] == "req-1"
    assert call.query["api-version"] == ["2024-10-01"]


def test_arm_401_is_identity_unavailable() -> None:
    client, _, _ = make_client(queue((401, {}, {"error": {"code": "InvalidAuthenticationTokenAudience"}})))
    with pytest.raises(IdentityUnavailable):
        client.send("GET", client.url("/x"))


def test_connection_failures_become_upstream_unavailable() -> None:
    import requests

    def refuse(_: Call) -> tuple[int, dict[str, str], object]:
        raise requests.ConnectionError("refused")

    client, transport, _ = make_client(refuse, tuning=ArmTuning(retry_total=2))
    with pytest.raises(UpstreamUnavailable):
        client.send("GET", client.url("/x"))
    assert len(transport.calls) == 3


def test_links_to_other_hosts_are_not_followed() -> None:
    credential = FakeCredential()
    client, transport, _ = make_client(queue(OK), credential=credential)
    with pytest.raises(UpstreamError) as raised:
        client.send("GET", "https://evil.example.test/steal?api-version=1")
    assert raised.value.status == 502
    assert transport.calls == []
    assert credential.scopes == []  # refused before a token was even asked for


def test_pages_follow_next_link_and_keep_api_version() -> None:
    def handler(call: Call) -> tuple[int, dict[str, str], object]:
        token = call.query.get("$skipToken", ["0"])[0]
        if token == "0":
            return 200, {}, {"value": [{"name": "a"}], "nextLink": f"{ARM}/list?$skipToken=1"}
        return 200, {}, {"value": [{"name": "b"}]}

    client, transport, _ = make_client(handler)
    pages = list(client.pages(client.url("/list")))
    assert [item["name"] for page in pages for item in page.body["value"]] == ["a", "b"]
    assert transport.calls[1].query["api-version"] == ["2024-10-01"]


def _operation(client: ArmClient, method: str, initial: Reply) -> LongRunningOperation:
    status, headers, body = initial
    return LongRunningOperation(
        client, method, client.url("/deployments/d1"), ArmResponse(status, CaseInsensitiveDict(headers), body, "")
    )


def test_lro_follows_azure_async_operation_then_gets_resource() -> None:
    statuses = iter(["InProgress", "InProgress", "Succeeded"])

    def handler(call: Call) -> tuple[int, dict[str, str], object]:
        if "operationStatuses" in call.path:
            return 200, {"Retry-After": "2"}, {"status": next(statuses)}
        return 200, {}, {"name": "d1", "properties": {"provisioningState": "Succeeded"}}

    client, transport, clock = make_client(handler)
    initial = (
        201,
        {"Azure-AsyncOperation": f"{ARM}/operationStatuses/1?api-version=2024-10-01", "Retry-After": "1"},
        {"name": "d1", "properties": {"provisioningState": "Accepted"}},
    )
    outcome = _operation(client, "PUT", initial).poll_until(clock() + 60)
    assert outcome.state == "Succeeded"
    assert outcome.resource and outcome.resource["properties"]["provisioningState"] == "Succeeded"
    assert clock.sleeps == [1.0, 2.0, 2.0]
    assert transport.calls[-1].path == "/deployments/d1"


def test_lro_stops_at_deadline_while_in_progress() -> None:
    client, _, clock = make_client(queue((200, {"Retry-After": "5"}, {"status": "InProgress"})))
    initial = (201, {"Azure-AsyncOperation": f"{ARM}/op/1"}, {"properties": {"provisioningState": "Creating"}})
    outcome = _operation(client, "PUT", initial).poll_until(clock() + 12)
    assert not outcome.terminal
    assert sum(clock.sleeps) == pytest.approx(12)


def test_lro_failed_operation_carries_arm_error() -> None:
    client, _, clock = make_client(
        queue((200, {}, {"status": "Failed", "error": {"code": "DeploymentFailed", "message": "boom"}}))
    )
    initial = (201, {"Azure-AsyncOperation": f"{ARM}/op/1"}, {"properties": {"provisioningState": "Accepted"}})
    outcome = _operation(client, "PUT", initial).poll_until(clock() + 60)
    assert outcome.state == "Failed"
    assert outcome.error == {"code": "DeploymentFailed", "message": "boom"}


def test_lro_location_polling_for_delete() -> None:
    client, _, clock = make_client(queue((202, {"Retry-After": "1"}, None), (204, {}, None)))
    initial = (202, {"Location": f"{ARM}/operationResults/1"}, None)
    outcome = _operation(client, "DELETE", initial).poll_until(clock() + 60)
    assert outcome.terminal and outcome.gone


def test_lro_without_headers_polls_the_resource() -> None:
    client, _, clock = make_client(queue((200, {}, {"properties": {"provisioningState": "Creating"}}), (404, {}, None)))
    initial = (202, {}, None)
    outcome = _operation(client, "DELETE", initial).poll_until(clock() + 60)
    assert outcome.gone


def test_sync_completion_needs_no_polling() -> None:
    client, transport, clock = make_client(queue(OK))
    outcome = _operation(client, "DELETE", (204, {}, None)).poll_until(clock() + 60)
    assert outcome.gone and transport.calls == [] and clock.sleeps == []


def test_lro_without_retry_after_polls_soon_then_backs_off() -> None:
    statuses = iter(["InProgress"] * 5 + ["Succeeded"])

    def handler(call: Call) -> tuple[int, dict[str, str], object]:
        if "op" in call.path:
            return 200, {}, {"status": next(statuses)}
        return 200, {}, {"properties": {"provisioningState": "Succeeded"}}

    client, _, clock = make_client(handler, tuning=ArmTuning(poll_interval_seconds=10))
    initial = (201, {"Azure-AsyncOperation": f"{ARM}/op/1"}, {"properties": {"provisioningState": "Accepted"}})
    outcome = _operation(client, "PUT", initial).poll_until(clock() + 120)
    assert outcome.state == "Succeeded"
    assert clock.sleeps == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


@pytest.mark.parametrize("status", [429, 503])
def test_a_throttled_or_failing_poll_is_not_a_failed_operation(status: int) -> None:
    """A status poll ARM throttled or failed (beyond the client's retries) says nothing about the operation:
    it is polled again, and the operation's own answer decides."""
    answers = iter([(status, {"Retry-After": "3"}, {"error": {"code": "Busy"}}), (200, {}, {"status": "Succeeded"})])

    def handler(call: Call) -> tuple[int, dict[str, str], object]:
        if "operationStatuses" in call.path:
            return next(answers)
        return 200, {}, {"name": "d1", "properties": {"provisioningState": "Succeeded"}}

    client, _, clock = make_client(handler, tuning=ArmTuning(retry_total=0, poll_interval_seconds=2))
    initial = (201, {"Azure-AsyncOperation": f"{ARM}/operationStatuses/1?api-version=2024-10-01"}, None)
    outcome = _operation(client, "PUT", initial).poll_until(clock() + 60)
    assert outcome.state == "Succeeded"
    assert 3.0 in clock.sleeps  # the throttled poll's Retry-After was honoured
