"""Service bugs found while holding the service to its contract: one minimal reproduction each, kept as a test.

Each test asserts what services/openapi.json and the README promise, and its docstring says what was wrong and
where. The first ones were found by the contract work and fixed in services/ (commit "Fix contract findings").
A new finding goes here marked `@pytest.mark.xfail(strict=True, reason="BUG: <file>: <what>")`: the run stays
green while the bug is there, and the fix turns the test into XPASS, which fails until the marker is removed.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from localdev.simulator.control_client import SimulatorControl
from localdev.wiring import DEMO_ACCOUNTS
from tests.contract.conftest import ContractStack

MODEL = DEMO_ACCOUNTS[0].models[0]
SUCCEEDED_JOB = DEMO_ACCOUNTS[0].fine_tuning_jobs[0]["id"]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
SUPERSCRIPT_TWO = "\u00b2"  # "²": str.isdigit() says yes, int() refuses it


class Api:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 60)
        return requests.request(method, f"{self.base_url}/api{path}", **kwargs)


@pytest.fixture
def api(contract_stack: ContractStack) -> Api:
    return Api(contract_stack.host_url)


def _refused(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    error: dict[str, Any] = (response.json().get("error") or {}) if response.content else {}
    assert (response.status_code, error.get("code")) == (status, code), response.text
    return error


def test_chat_stream_options_that_is_not_an_object_is_refused(api: Api) -> None:
    """Was 500: services/inference.py chat_completions merged a non-object `stream_options` with `{**options}`
    (TypeError) when `stream` was true."""
    body = {"messages": [{"role": "user", "content": "Hi"}], "stream": True, "stream_options": [1]}
    path = "/openai/deployments/vision/chat/completions?api-version=2024-10-21"
    error = _refused(api("POST", path, json=body), 400, "InvalidField")
    assert error["target"] == "stream_options"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/deployments/contract-wait", {"model": MODEL}),
        ("PATCH", "/deployments/vision", {"capacity": 10}),
        ("DELETE", "/deployments/contract-wait", None),
        ("POST", f"/fine_tuning/jobs/{SUCCEEDED_JOB}/deploy", {"deployment": "contract-wait"}),
    ],
)
def test_wait_with_a_non_ascii_digit_is_refused(api: Api, method: str, path: str, body: Any) -> None:
    """Was 500: services/web.py parse_wait took `?wait=²` (str.isdigit() is true for it), then int() raised."""
    _refused(api(method, path, params={"wait": SUPERSCRIPT_TWO}, json=body), 400, "InvalidQueryParameter")


def test_max_tokens_with_a_non_ascii_digit_is_refused(api: Api) -> None:
    """Was 500: services/images.py check_request, the same isdigit()/int() mismatch for `max_tokens`."""
    answer = api("POST", "/process_image", params={"instructions": "Describe", "max_tokens": SUPERSCRIPT_TWO}, data=PNG)
    _refused(answer, 400, "InvalidQueryParameter")


def test_top_with_a_non_ascii_digit_is_refused(api: Api) -> None:
    """Was 500: services/audit.py _top, the same isdigit()/int() mismatch for `top`."""
    _refused(api("GET", "/audit", params={"top": SUPERSCRIPT_TWO}), 400, "InvalidQueryParameter")


def test_a_foreign_continuation_token_is_refused(api: Api) -> None:
    """Was 500: services/audit.py, a `continuationToken` that decodes to JSON but is no Table continuation ('MQ'
    is base64 of 1) made azure-data-tables raise ValueError, and only AzureError was handled."""
    _refused(api("GET", "/audit", params={"continuationToken": "MQ"}), 400, "InvalidQueryParameter")


def test_a_deployment_name_with_a_trailing_newline_is_refused(api: Api) -> None:
    """Was 201: services/deployments.py _check_name used DEPLOYMENT_NAME.match(), whose '$' matches before a
    trailing newline, so 'contract-nl\\n' went to ARM (job ids and api-version had the same '$')."""
    _refused(api("PUT", "/deployments/contract-nl%0A", json={"model": MODEL}), 400, "InvalidDeploymentName")
    _refused(api("GET", "/fine_tuning/jobs/ftjob-1%0A"), 400, "InvalidJobId")
    answer = api("POST", "/openai/deployments/vision/chat/completions?api-version=2024-10-21%0A", json={})
    _refused(answer, 400, "InvalidQueryParameter")


def test_audit_time_filters_before_1970(api: Api) -> None:
    """Was wrong answers: services/audit.py made row-key bounds from negative timestamps (16 digits against
    15-digit keys), so `since=1969-…` found nothing and `until=1969-…` found everything."""
    api("PUT", "/deployments/contract-audited", json={"model": MODEL})
    assert api("GET", "/audit").json()["value"], "no audit record to find"
    assert api("GET", "/audit", params={"since": "1969-12-31T00:00:00Z"}).json()["value"]
    assert api("GET", "/audit", params={"until": "1969-12-31T00:00:00Z"}).json()["value"] == []


def test_audit_accepts_rfc3339_lowercase_date_times(api: Api) -> None:
    """Was 400: RFC 3339 (the document's `date-time`) allows 't' and 'z'; services/audit.py _when only rewrote
    'Z' for datetime.fromisoformat."""
    assert api("GET", "/audit", params={"since": "2026-11-22t08:00:00z"}).status_code == 200


def _released_while_waiting(sim: SimulatorControl, call: Callable[[], requests.Response]) -> requests.Response:
    """Make `call` while the simulator holds every operation, and release them once the service is on it.

    The change being repeated is then certainly still running when the repeat arrives; a service that does not
    wait answers before the release (202), one that waits answers after it.
    """
    seen = len(sim.requests("arm"))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(call)
        deadline = time.monotonic() + 30
        while len(sim.requests("arm")) == seen and not answer.done() and time.monotonic() < deadline:
            time.sleep(0.05)
        sim.release_operations()
        return answer.result(timeout=60)


def test_repeating_a_running_change_with_wait_waits(api: Api, slow_writes: SimulatorControl) -> None:
    """Was 202 at once: services/deployments.py answered a repeated PUT (or DELETE) of a change still running
    without waiting, though `?wait` promises to wait for a terminal state."""
    body = {"model": MODEL}
    slow_writes.hold_operations()
    assert api("PUT", "/deployments/contract-rewait", json=body).status_code == 202
    again = _released_while_waiting(
        slow_writes, lambda: api("PUT", "/deployments/contract-rewait", params={"wait": "20"}, json=body)
    )
    assert again.status_code in (200, 201), again.text
    slow_writes.hold_operations()
    assert api("DELETE", "/deployments/contract-rewait").status_code == 202
    gone = _released_while_waiting(
        slow_writes, lambda: api("DELETE", "/deployments/contract-rewait", params={"wait": "20"})
    )
    assert gone.status_code == 204, gone.text


def test_deploy_from_job_names_the_deployment_field(api: Api) -> None:
    """Was `target: name`: services/fine_tuning.py let deployments._check_name report the `deployment` field
    under the name of PUT's path parameter."""
    answer = api("POST", f"/fine_tuning/jobs/{SUCCEEDED_JOB}/deploy", json={"deployment": "x"})
    assert _refused(answer, 400, "InvalidDeploymentName")["target"] == "deployment"


def test_a_repeated_delete_answers_like_the_first(api: Api, slow_writes: SimulatorControl) -> None:
    """Was a body on the repeat only: services/deployments.py _already handed the current resource to _finish.
    The document's DELETE 202 has no body, the first answer's or a repeat's."""
    assert api("PUT", "/deployments/contract-redelete", params={"wait": "20"}, json={"model": MODEL}).ok
    slow_writes.hold_operations()  # the repeat lands while the first delete still runs
    first = api("DELETE", "/deployments/contract-redelete")
    again = api("DELETE", "/deployments/contract-redelete")
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.content == again.content == b"", again.text
