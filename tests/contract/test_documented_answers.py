"""The answers fuzzing cannot reach, each checked against services/openapi.json with Schemathesis' own checks.

The fuzzing run (test_schemathesis.py) has writes complete at once and nothing failing upstream. These
scenarios make the other documented answers happen on purpose and hold each to the document: 202 with
`Location` / `Retry-After` while ARM provisions or deletes, ARM's and Azure OpenAI's errors passed on
(429, 403, 5xx, content filter), a failed provisioning, the Functions keys gate, and an audit store that cannot
be written.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
import schemathesis
from requests.structures import CaseInsensitiveDict
from schemathesis.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from localdev.wiring import DEMO_ACCOUNTS
from tests.contract.conftest import DOCUMENT_PATH, ContractStack, fuzzing_simulator_config

MODEL = DEMO_ACCOUNTS[0].models[0]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
CONFORMANCE = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
DEPLOYMENT = "/api/deployments/{name}"
CHAT = "/api/openai/deployments/{deployment}/chat/completions"


@pytest.fixture(scope="module")
def schema() -> Any:
    return schemathesis.openapi.from_path(str(DOCUMENT_PATH))


class Answer:
    """What came back, with headers as one case-insensitive value each."""

    def __init__(self, response: Any) -> None:
        self.status_code: int = response.status_code
        self.content: bytes = response.content
        self.headers = CaseInsensitiveDict({name: values[0] for name, values in response.headers.items()})

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class Caller:
    """Sends one request built from the document's operation and checks the answer against the document."""

    def __init__(self, schema: Any, base_url: str) -> None:
        self.schema = schema
        self.base_url = base_url

    def __call__(
        self,
        method: str,
        path: str,
        *,
        checks: list[Any] = CONFORMANCE,
        media_type: str | None = None,
        **parts: Any,
    ) -> Answer:
        if "body" in parts and media_type is None:
            media_type = "application/json"
        case = self.schema[path][method].Case(media_type=media_type, **parts)
        response = case.call(base_url=self.base_url, timeout=60)
        case.validate_response(response, checks=checks)
        return Answer(response)


@pytest.fixture
def call(schema: Any, contract_stack: ContractStack) -> Caller:
    return Caller(schema, contract_stack.host_url)


def _until_succeeded(call: Caller, name: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if call("GET", DEPLOYMENT, path_parameters={"name": name}).json()["provisioningState"] == "Succeeded":
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} did not reach Succeeded")


@pytest.mark.usefixtures("slow_writes")
def test_long_running_writes_answer_202_with_location(call: Caller, contract_stack: ContractStack) -> None:
    control = contract_stack.control
    assert control is not None
    name = {"name": "contract-lro"}
    body = {"model": MODEL, "sku": {"name": "Standard", "capacity": 1}}
    control.hold_operations()  # the repeats below must land while the operation runs: hold it there
    accepted = call("PUT", DEPLOYMENT, path_parameters=name, query={"wait": "0"}, body=body)
    assert accepted.status_code == 202, accepted.text
    assert accepted.headers["Location"] == "/api/deployments/contract-lro?account=main"
    assert int(accepted.headers["Retry-After"]) >= 1
    assert accepted.json()["provisioningState"] in ("Accepted", "Creating")
    again = call("PUT", DEPLOYMENT, path_parameters=name, body=body)  # the same change, still provisioning
    assert again.status_code == 202
    polled = call("GET", DEPLOYMENT, path_parameters=name, query={"account": "main"})
    assert polled.status_code == 200
    control.release_operations()
    _until_succeeded(call, "contract-lro")

    scaled = call("PATCH", DEPLOYMENT, path_parameters=name, query={"wait": "0"}, body={"capacity": 2})
    assert scaled.status_code == 202, scaled.text
    _until_succeeded(call, "contract-lro")
    refused = call("PATCH", DEPLOYMENT, path_parameters=name, body={"capacity": 301})  # Standard: at most 300
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "InvalidCapacity")

    control.hold_operations()
    deleting = call("DELETE", DEPLOYMENT, path_parameters=name, query={"wait": "0"})
    assert deleting.status_code == 202
    assert deleting.headers["Location"] == "/api/deployments/contract-lro?account=main"
    assert deleting.content == b""
    assert call("DELETE", DEPLOYMENT, path_parameters=name).status_code == 202  # still deleting: no new ARM call
    control.release_operations()
    deadline = time.monotonic() + 20
    while (gone := call("GET", DEPLOYMENT, path_parameters=name)).status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "DeploymentNotFound")
    assert call("DELETE", DEPLOYMENT, path_parameters=name).status_code == 204


def test_failed_provisioning_is_500_with_arms_code(call: Caller, contract_stack: ContractStack) -> None:
    assert contract_stack.control is not None
    config = fuzzing_simulator_config()
    config["accounts"][0]["failingModels"] = ["doomed.ft-0"]
    contract_stack.control.set_config(config)
    try:
        failed = call(
            "PUT",
            DEPLOYMENT,
            path_parameters={"name": "contract-doomed"},
            query={"wait": "10"},
            body={"model": "doomed.ft-0"},
        )
    finally:
        contract_stack.control.set_config(fuzzing_simulator_config())
    assert (failed.status_code, failed.json()["error"]["code"]) == (500, "DeploymentFailed")


@pytest.mark.parametrize(
    ("fault", "method", "path", "parts", "status"),
    [
        (
            {"method": "GET", "pathContains": "/deployments", "status": 429, "code": "TooManyRequests"},
            "GET",
            "/api/deployments",
            {},
            429,
        ),
        (
            {"method": "GET", "pathContains": "/deployments/", "status": 403, "code": "AuthorizationFailed"},
            "GET",
            DEPLOYMENT,
            {"path_parameters": {"name": "vision"}},
            403,
        ),
        (
            {"method": "GET", "pathContains": "/deployments", "status": 503, "code": "ServiceUnavailable"},
            "GET",
            "/api/deployments",
            {},
            503,
        ),
        (
            {"method": "PUT", "pathContains": "/deployments/", "status": 400, "code": "InsufficientQuota"},
            "PUT",
            DEPLOYMENT,
            {"path_parameters": {"name": "contract-quota"}, "body": {"model": MODEL}},
            400,
        ),
        (
            {"method": "PUT", "pathContains": "/deployments/", "status": 504, "code": "GatewayTimeout"},
            "PUT",
            DEPLOYMENT,
            {"path_parameters": {"name": "contract-timeout"}, "body": {"model": MODEL}},
            504,
        ),
    ],
)
def test_arm_refusals_are_passed_on_as_documented(
    call: Caller, contract_stack: ContractStack, fault: dict[str, Any], method: str, path: str, parts: Any, status: int
) -> None:
    assert contract_stack.control is not None
    contract_stack.control.add_fault(scope="arm", count=-1, **fault)
    try:
        answer = call(method, path, **parts)
    finally:
        contract_stack.control.clear_faults()
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, fault["code"])


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        ({"status": 429, "retryAfter": 5, "retryAfterMs": 5000}, 429),  # longer than the 1 s the service retries
        ({"status": 500}, 500),
        ({"status": 503}, 503),
    ],
)
def test_azure_openai_errors_are_relayed_as_documented(
    call: Caller, contract_stack: ContractStack, fault: dict[str, Any], status: int
) -> None:
    assert contract_stack.control is not None
    contract_stack.control.add_fault(scope="dataplane", count=-1, **fault)
    try:
        chat = call(
            "POST",
            CHAT,
            path_parameters={"deployment": "vision"},
            query={"api-version": "2024-10-21"},
            body={"messages": [{"role": "user", "content": "Hello"}]},
        )
        image = call(
            "POST",
            "/api/process_image",
            query={"instructions": "Describe"},
            body=PNG,
            media_type="application/octet-stream",
        )
    finally:
        contract_stack.control.clear_faults()
    assert chat.status_code == image.status_code == status
    # x-request-id is the service's id on relayed answers too; Azure's own comes back as x-ms-request-id.
    assert chat.headers["x-ms-client-request-id"] == chat.headers["x-request-id"] != chat.headers["x-ms-request-id"]


def test_content_filter_and_streams_are_relayed_as_documented(call: Caller) -> None:
    refused = call(
        "POST",
        CHAT,
        path_parameters={"deployment": "vision"},
        query={"api-version": "2024-10-21"},
        body={"messages": [{"role": "user", "content": "please trigger-content-filter"}]},
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "content_filter")
    streamed = call(
        "POST",
        CHAT,
        path_parameters={"deployment": "vision"},
        query={"api-version": "2024-10-21"},
        body={"messages": [{"role": "user", "content": "Hello there"}], "stream": True},
    )
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.text.rstrip().endswith("data: [DONE]")
    answered = call(
        "POST",
        "/api/process_image",
        query={"instructions": "Describe"},
        body=PNG,
        media_type="application/octet-stream",
        headers={"Accept": "application/json"},
    )
    assert answered.json()["deployment"] == "vision"


def test_audit_pages_follow_next_link(call: Caller, contract_stack: ContractStack) -> None:
    for name in ("contract-page-1", "contract-page-2"):
        call("PUT", DEPLOYMENT, path_parameters={"name": name}, body={"model": MODEL})
    first = call("GET", "/api/audit", query={"top": "1"})
    assert len(first.json()["value"]) == 1
    link = first.json()["nextLink"]
    second = requests.get(contract_stack.host_url + link, timeout=30)
    case = call.schema["/api/audit"]["GET"].Case()
    case.validate_response(second, checks=CONFORMANCE)
    assert second.json()["value"][0]["id"] != first.json()["value"][0]["id"]


def test_function_keys_gate_as_documented(schema: Any, contract_stack: ContractStack) -> None:
    key = "contract-function-key"
    call = Caller(schema, contract_stack.start_host("--function-key", key, AUTH_MODE="keys"))
    # The host's own 401 has no body (documented in the 401 description), so only status and headers are checked.
    refused = call("GET", "/api/deployments", checks=[status_code_conformance, response_headers_conformance])
    assert (refused.status_code, refused.content) == (401, b"")
    assert call("GET", "/api/deployments", headers={"x-functions-key": key}).status_code == 200
    assert call("GET", "/api/deployments", query={"code": key}).status_code == 200
    assert call("GET", "/api/openapi.json").status_code == 200  # no key needed


def test_an_unwritable_audit_store_refuses_changes_as_documented(schema: Any, contract_stack: ContractStack) -> None:
    nowhere = (
        "DefaultEndpointsProtocol=http;AccountName=nowhere;AccountKey=bm93aGVyZQ==;"
        "TableEndpoint=http://127.0.0.1:9/nowhere;"
    )
    call = Caller(schema, contract_stack.start_host(AzureWebJobsStorage=nowhere))
    refused = call("PUT", DEPLOYMENT, path_parameters={"name": "contract-unaudited"}, body={"model": MODEL})
    assert (refused.status_code, refused.json()["error"]["code"]) == (503, "AuditUnavailable")
    assert refused.headers["Retry-After"] == "30"
    unreadable = call("GET", "/api/audit")
    assert (unreadable.status_code, unreadable.json()["error"]["code"]) == (503, "AuditUnavailable")
    assert call("GET", DEPLOYMENT, path_parameters={"name": "contract-unaudited"}).status_code == 404  # never made
