"""docs/postman: a Postman v2.1 collection with a request for every documented operation, and each request works.

The last test plays the collection top to bottom against the local host, as Postman's runner would with the
default variables (the file bodies get a small PNG), and holds every answer to services/openapi.json.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import requests

from localdev.wiring import PROJECT_ROOT
from tests.contract.conftest import ContractStack, fuzzing_simulator_config
from tests.contract.test_openapi import operations, validate_answer

COLLECTION_PATH = PROJECT_ROOT / "docs" / "postman" / "fine-tuned-deployments.postman_collection.json"
SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
_VARIABLE = re.compile(r"\{\{(\w+)\}\}")


@pytest.fixture(scope="module")
def collection() -> dict[str, Any]:
    return json.loads(COLLECTION_PATH.read_text(encoding="utf-8"))


def requests_of(collection: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{folder['name']} / {item['name']}", item) for folder in collection["item"] for item in folder["item"]]


def raw_url(item: dict[str, Any]) -> str:
    url = item["request"]["url"]
    return url if isinstance(url, str) else url["raw"]


def substitute(text: str, variables: dict[str, str]) -> str:
    return _VARIABLE.sub(lambda match: variables[match.group(1)], text)


def operation_of(document: dict[str, Any], method: str, url: str) -> tuple[str, str] | None:
    path = url.split("?", 1)[0]
    for op_method, op_path, _ in operations(document):
        pattern = "^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(op_path)) + "$"
        if op_method == method and re.match(pattern, path):
            return op_method, op_path
    return None


def test_collection_is_postman_v2_1_with_a_base_url(collection: dict[str, Any]) -> None:
    assert collection["info"]["schema"] == SCHEMA
    variables = {variable["key"]: variable["value"] for variable in collection["variable"]}
    assert variables["baseUrl"] == "http://127.0.0.1:7071"
    assert [folder["name"] for folder in collection["item"]] == [
        "Deployments",
        "Inference",
        "Fine-tuning",
        "Serverless endpoints",
        "Audit",
        "Overview",
        "Contract",
    ]
    for name, item in requests_of(collection):
        assert raw_url(item).startswith("{{baseUrl}}"), name
        assert set(_VARIABLE.findall(json.dumps(item))) <= set(variables), f"{name} uses an undefined variable"


def test_every_documented_operation_has_a_request(collection: dict[str, Any], document: dict[str, Any]) -> None:
    variables = {variable["key"]: variable["value"] for variable in collection["variable"]}
    covered = set()
    for name, item in requests_of(collection):
        url = substitute(raw_url(item), {**variables, "baseUrl": ""})
        if not url:
            continue  # the audit's next page, whose URL a test script sets
        found = operation_of(document, item["request"]["method"], url)
        assert found, f"{name}: {item['request']['method']} {url} is not a documented operation"
        covered.add(found)
    documented = {(method, path) for method, path, _ in operations(document)}
    assert documented == covered, f"no request for {documented - covered}"


def test_the_collection_runs_against_the_local_host(
    collection: dict[str, Any], document: dict[str, Any], contract_stack: ContractStack
) -> None:
    assert contract_stack.control is not None
    contract_stack.control.set_config(fuzzing_simulator_config())
    variables = {variable["key"]: variable["value"] for variable in collection["variable"]}
    variables["baseUrl"] = contract_stack.host_url
    for name, item in requests_of(collection):
        request = item["request"]
        url = substitute(raw_url(item), variables)
        if url == contract_stack.host_url:
            continue  # no nextLink: the last page was the only one
        headers = {header["key"]: substitute(header["value"], variables) for header in request.get("header", [])}
        body = request.get("body")
        data = substitute(body["raw"], variables).encode() if body and body["mode"] == "raw" else None
        if body and body["mode"] == "file":
            data = PNG  # Postman sends the file the user picks
        answer = requests.request(request["method"], url, headers=headers, data=data, timeout=120)
        assert 200 <= answer.status_code < 300, f"{name}: {answer.status_code} {answer.text[:500]}"
        method, path = operation_of(document, request["method"], url.removeprefix(contract_stack.host_url)) or ("", "")
        if answer.headers.get("content-type", "").startswith("application/json"):
            validate_answer(document, method, path, answer.status_code, answer.json(), dict(answer.headers))
        # What the collection's test scripts keep for the next requests.
        if answer.headers.get("Location"):
            variables["pollPath"] = answer.headers["Location"]
        if path == "/api/audit":
            variables["auditNextLink"] = answer.json().get("nextLink") or ""
