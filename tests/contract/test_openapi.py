"""services/openapi.json is a valid OpenAPI 3.1 document and describes exactly the app's routes and rules.

Static checks against the code (no processes): the registered functions and the document's operations are the
same set; each operation's app role is the one the code enforces (asked of the handlers themselves) and the
README names; the request limits and patterns are the service's own constants and pydantic models; every error
code the service can answer is documented; and the auth answers (401/403/503) match the document.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from starlette.requests import Request

from localdev.host import HttpFunction, registered_functions, route_prefix_from_host_json, starlette_paths
from localdev.wiring import PROJECT_ROOT
from services.context import AppContext, using
from tests.contract.conftest import DOCUMENT_PATH

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
README = PROJECT_ROOT / "README.md"

# Routes the document describes before the app registers them, as (METHOD, path). `GET /api/openapi.json` and
# `GET /api/audit` were listed here while they were being added; both are registered now, so this is empty.
# A route listed here that the app registers fails the test: take it out then.
PENDING_ROUTES: set[tuple[str, str]] = set()

SECURED = [{"entra": []}, {"functionKey": []}, {"functionKeyQuery": []}]


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method.upper(), path, operation


def registered() -> dict[tuple[str, str], HttpFunction]:
    prefix = route_prefix_from_host_json()
    routes = {}
    for function in registered_functions():
        [path] = starlette_paths(function.route, prefix)
        for method in function.methods:
            routes[(method, path)] = function
    return routes


def resolve(document: dict[str, Any], node: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A `$ref`-free object and the JSON pointer it lives at (only local references are used)."""
    pointer = ""
    while "$ref" in node:
        pointer = node["$ref"].removeprefix("#")
        node = document
        for part in pointer.strip("/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node, pointer


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def response_for(document: dict[str, Any], method: str, path: str, status: int) -> tuple[dict[str, Any], str]:
    """The documented response for a status (an exact code first, then its `4XX` / `5XX` range)."""
    responses = document["paths"][path][method.lower()]["responses"]
    key = str(status) if str(status) in responses else f"{str(status)[0]}XX"
    assert key in responses, f"{method} {path} does not document {status}"
    node, pointer = resolve(document, responses[key])
    return node, pointer or f"/paths/{_escape(path)}/{method.lower()}/responses/{key}"


def validate_answer(
    document: dict[str, Any], method: str, path: str, status: int, body: Any, headers: dict[str, str]
) -> None:
    response, pointer = response_for(document, method, path, status)
    for name, header in response.get("headers", {}).items():
        header, _ = resolve(document, header)
        if header.get("required"):
            assert name.lower() in {key.lower() for key in headers}, f"{method} {path} {status}: no {name} header"
    schema_pointer = f"{pointer}/content/application~1json/schema"
    registry = Registry().with_resource("urn:contract", Resource(contents=document, specification=DRAFT202012))
    validator = Draft202012Validator({"$ref": f"urn:contract#{schema_pointer}"}, registry=registry)
    errors = [error.message for error in validator.iter_errors(body)]
    assert not errors, f"{method} {path} {status}: the body breaks the document: {errors}"


# The document itself


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    OpenAPIV31SpecValidator(document).validate()


def test_document_is_canonical_json() -> None:
    """Kept as the app serves it: UTF-8 JSON, 2-space indent, one trailing newline (clean diffs)."""
    text = DOCUMENT_PATH.read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"


# Routes


def test_every_registered_function_is_documented_and_nothing_else(document: dict[str, Any]) -> None:
    routes = registered()
    documented = {(method, path) for method, path, _ in operations(document)}
    assert not set(routes) - documented, f"registered but not in services/openapi.json: {set(routes) - documented}"
    assert not (documented - set(routes)) - PENDING_ROUTES, (
        f"documented but not registered: {(documented - set(routes)) - PENDING_ROUTES}"
    )
    now_registered = PENDING_ROUTES & set(routes)
    assert not now_registered, f"registered now: take them out of PENDING_ROUTES: {now_registered}"
    assert not PENDING_ROUTES - documented, f"PENDING_ROUTES names routes the document lacks: {PENDING_ROUTES}"


def test_operations_are_named_after_their_functions(document: dict[str, Any]) -> None:
    routes = registered()
    for method, path, operation in operations(document):
        if (method, path) in routes:
            assert operation["operationId"] == routes[(method, path)].name, f"{method} {path}"


def test_path_parameters_match_the_route_templates(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        in_path = {
            parameter["name"]
            for parameter in (resolve(document, p)[0] for p in operation.get("parameters", []))
            if parameter["in"] == "path"
        }
        assert in_path == set(re.findall(r"\{(\w+)\}", path)), f"{method} {path}"


# Roles and security


def _readme_roles() -> dict[str, str | None]:
    table = README.read_text(encoding="utf-8").split("<!-- routes")[1].split("<!-- /routes -->")[0]
    roles: dict[str, str | None] = {}
    for line in table.splitlines():
        cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.match(r"^[a-z_]+$", cells[0]):
            roles[cells[0]] = None if cells[4] == "none" else cells[4]
    return roles


def test_security_and_roles_are_declared_per_operation(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["entra"] == {**schemes["entra"], "type": "http", "scheme": "bearer"}
    assert (schemes["functionKey"]["in"], schemes["functionKey"]["name"]) == ("header", "x-functions-key")
    assert (schemes["functionKeyQuery"]["in"], schemes["functionKeyQuery"]["name"]) == ("query", "code")
    readme = _readme_roles()
    for method, path, operation in operations(document):
        role = operation["x-required-role"]
        assert operation["security"] == (SECURED if role else []), f"{method} {path}"
        assert readme.get(operation["operationId"], "missing") == role, f"README and document differ on {path}"
        if role:
            statuses = operation["responses"]
            assert {"401", "403", "503"} <= set(statuses), f"{method} {path} lacks an auth answer"


def _call(function: HttpFunction, headers: dict[str, str]) -> tuple[int, Any, dict[str, str], bytes]:
    path = starlette_paths(function.route, route_prefix_from_host_json())[0]
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": function.methods[0],
        "scheme": "http",
        "server": ("contract.test", 80),
        "client": ("127.0.0.1", 50000),
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "path_params": {name: "contract-probe" for name in re.findall(r"\{(\w+)\}", path)},
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    response = asyncio.run(function.handler(**{function.argument: Request(scope, receive)}))
    body = bytes(response.body)
    is_json = response.headers.get("content-type", "").startswith("application/json")
    parsed = json.loads(body) if body and is_json else None
    return response.status_code, parsed, dict(response.headers), body


ACCOUNTS = {
    "main": {"subscriptionId": "11111111-1111-1111-1111-111111111111", "resourceGroup": "rg", "accountName": "aoai"}
}


def entra_settings(*, platform_auth: bool = True) -> dict[str, str]:
    """Settings as in Azure with AUTH_MODE=entra; with or without App Service Authentication in front."""
    settings = {"AZURE_OPENAI_ACCOUNTS": json.dumps(ACCOUNTS), "AUTH_MODE": "entra", "AUDIT_TABLE": "audit"}
    return {**settings, "WEBSITE_AUTH_ENABLED": "True"} if platform_auth else settings


@pytest.fixture
def entra() -> Iterator[None]:
    """The handlers run with an application context of these settings (no Azure is reached: refused first)."""
    with using(AppContext(entra_settings())):
        yield


@pytest.mark.usefixtures("entra")
def test_each_operation_requires_the_documented_role(document: dict[str, Any]) -> None:
    """Asked of the handlers: a signed-in caller without roles is refused naming the role the code needs."""
    from services.auth import encode_principal

    nobody = encode_principal(object_id="00000000-0000-0000-0000-00000000c0de", roles=[], name="contract test")
    for (method, path), function in registered().items():
        operation = document["paths"][path][method.lower()]
        status, body, headers, raw = _call(function, {"x-ms-client-principal": nobody})
        role = operation["x-required-role"]
        if role is None:
            if path != "/api/openapi.json":  # the page and its files: no role, answered as documented
                assert str(status) in operation["responses"], f"{method} {path} answered {status}"
                continue
            assert status == 200, f"{path}: {body}"
            assert raw == DOCUMENT_PATH.read_bytes(), "the served document is not services/openapi.json"
            continue
        assert status == 403, f"{method} {path} answered {status} to a caller without roles: {body}"
        assert body["error"]["code"] == "Forbidden"
        assert f"needs the app role '{role}'" in body["error"]["message"], f"{method} {path}: {body}"
        validate_answer(document, method, path, status, body, headers)


@pytest.mark.usefixtures("entra")
def test_auth_refusals_are_documented(document: dict[str, Any]) -> None:
    protected = [
        (key, function)
        for key, function in registered().items()
        if document["paths"][key[1]][key[0].lower()]["x-required-role"] is not None
    ]
    for (method, path), function in protected:
        status, body, headers, _ = _call(function, {})
        assert (status, body["error"]["code"]) == (401, "Unauthorized"), f"{method} {path}"
        assert headers.get("www-authenticate") == "Bearer"
        validate_answer(document, method, path, status, body, headers)
    with using(AppContext(entra_settings(platform_auth=False))):
        for (method, path), function in protected:
            status, body, headers, _ = _call(function, {})
            assert (status, body["error"]["code"]) == (503, "AuthenticationNotConfigured"), f"{method} {path}"
            validate_answer(document, method, path, status, body, headers)


# Rules: the document's limits are the code's


def _schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    return document["components"]["schemas"][name]


def _non_null(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The non-null alternative of a nullable schema, references resolved."""
    schema, _ = resolve(document, schema)
    if "anyOf" in schema and {"type": "null"} in schema["anyOf"]:
        [other] = [option for option in schema["anyOf"] if option != {"type": "null"}]
        return _non_null(document, other)
    return schema


def _pydantic_field(model_schema: dict[str, Any], name: str) -> dict[str, Any]:
    field = model_schema["properties"][name]
    options = [option for option in field.get("anyOf", [field]) if option != {"type": "null"}]
    [option] = options
    if "$ref" in option:
        return dict(model_schema["$defs"][option["$ref"].rsplit("/", 1)[1]])
    return dict(option)


def test_deployment_rules_are_the_services(document: dict[str, Any]) -> None:
    from services import deployment_requests as deployments
    from services import fine_tuning, images, web

    put = _schema(document, "DeploymentRequest")
    model = deployments.DeploymentRequest.model_json_schema()
    assert set(put["properties"]) == set(model["properties"])
    assert put["required"] == model["required"] == ["model"]
    assert put["additionalProperties"] is False
    for name in ("model", "version", "format"):
        assert _non_null(document, put["properties"][name])["pattern"] == _pydantic_field(model, name)["pattern"]
    rai = _non_null(document, put["properties"]["raiPolicyName"])
    assert (
        (rai["minLength"], rai["maxLength"])
        == (1, 256)
        == tuple(_pydantic_field(model, "raiPolicyName")[k] for k in ("minLength", "maxLength"))
    )
    assert _non_null(document, put["properties"]["versionUpgradeOption"])["enum"] == list(
        _pydantic_field(model, "versionUpgradeOption")["enum"]
    )
    tags, pydantic_tags = _non_null(document, put["properties"]["tags"]), _pydantic_field(model, "tags")
    [(key_pattern, value_schema)] = pydantic_tags["patternProperties"].items()
    assert tags["maxProperties"] == pydantic_tags["maxProperties"] == 50
    assert tags["propertyNames"] == {**pydantic_tags["propertyNames"], "pattern": key_pattern}
    assert tags["additionalProperties"] == value_schema
    capacity = _non_null(document, _non_null(document, put["properties"]["sku"])["properties"]["capacity"])
    assert (capacity["minimum"], capacity["maximum"]) == (1, deployments.MAX_CAPACITY)
    sku_name = _schema(document, "SkuName")
    assert sku_name["anyOf"][0]["enum"] == list(deployments.SKU_NAMES)
    pattern = re.compile(sku_name["anyOf"][1]["pattern"])
    for name in deployments.SKU_NAMES:
        assert pattern.match(name) and pattern.match(name.upper()) and pattern.match(name.lower())
    assert not pattern.match("Standard2")

    assert set(_schema(document, "ScaleRequest")["properties"]) == set(deployments.ScaleRequest.model_fields)
    deploy = _schema(document, "DeployFromJobRequest")
    assert set(deploy["properties"]) == set(fine_tuning.DeployFromJobRequest.model_fields)

    parameters = document["components"]["parameters"]
    assert parameters["name"]["schema"]["pattern"] == deployments.DEPLOYMENT_NAME.pattern
    assert deploy["properties"]["deployment"]["pattern"] == deployments.DEPLOYMENT_NAME.pattern
    assert parameters["jobId"]["schema"]["pattern"] == fine_tuning._JOB_ID.pattern
    assert parameters["instructions"]["schema"]["maxLength"] == images.MAX_INSTRUCTIONS_CHARS
    assert parameters["maxTokens"]["schema"]["default"] == images.DEFAULT_MAX_TOKENS
    assert _schema(document, "ImageBytes")["maxLength"] == images.MAX_IMAGE_BYTES

    bodies = {
        operation["operationId"]: operation["requestBody"]["x-max-body-bytes"]
        for _, _, operation in operations(document)
        if "requestBody" in operation
    }
    assert bodies == {
        "put_deployment": web.MAX_JSON_BODY_BYTES,
        "scale_deployment": web.MAX_JSON_BODY_BYTES,
        "deploy_fine_tuning_job": web.MAX_JSON_BODY_BYTES,
        "chat_completions": 32 * 1024 * 1024,  # INFERENCE_MAX_BODY_BYTES' default
        "process_image": images.MAX_IMAGE_BYTES,
        "put_serverless_endpoint": web.MAX_JSON_BODY_BYTES,
        "serverless_chat_completions": 32 * 1024 * 1024,
    }
    from services import serverless_requests

    endpoint = serverless_requests.EndpointRequest.model_json_schema()
    assert set(_schema(document, "ServerlessEndpointRequest")["properties"]) == set(endpoint["properties"])
    assert _schema(document, "ServerlessEndpointRequest")["required"] == endpoint["required"] == ["model"]
    assert parameters["endpointName"]["schema"]["pattern"] == serverless_requests.ENDPOINT_NAME.pattern


def test_wait_bounds_are_the_default_settings(document: dict[str, Any]) -> None:
    from services.settings import ArmTuning

    wait = document["components"]["parameters"]["wait"]["schema"]
    assert (wait["minimum"], wait["maximum"], wait["default"]) == (0, ArmTuning().max_wait_seconds, 0)


# Errors


def _service_error_codes() -> set[str]:
    sources = [
        *sorted((PROJECT_ROOT / "services").glob("*.py")),
        *sorted((PROJECT_ROOT / "blueprints").glob("*.py")),
        PROJECT_ROOT / "function_app.py",
    ]
    codes: set[str] = set()
    for source in sources:
        text = Path(source).read_text(encoding="utf-8")
        codes |= set(re.findall(r"\bcode ?= ?\"([A-Z][A-Za-z]+)\"", text))
        codes |= set(re.findall(r"\"code\": \"([A-Z][A-Za-z]+)\"", text))
        codes |= set(re.findall(r"or \"([A-Z][A-Za-z]+)\"\)", text))  # defaults such as DeploymentFailed
    return codes


def test_every_error_code_of_the_service_is_documented(document: dict[str, Any]) -> None:
    codes = _service_error_codes()
    assert {"InvalidJson", "AuditUnavailable", "InternalServerError", "DeploymentFailed"} <= codes
    text = DOCUMENT_PATH.read_text(encoding="utf-8")
    missing = sorted(code for code in codes if f"`{code}`" not in text and f'"{code}"' not in text)
    assert not missing, f"error codes the service answers but the document does not name: {missing}"


def test_every_answer_carries_a_request_id_and_errors_have_the_error_shape(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            response, _ = resolve(document, response)
            assert "x-request-id" in response.get("headers", {}), f"{method} {path} {status}"
            if status[0] in "45":
                refs = json.dumps(response["content"]["application/json"]["schema"])
                assert "#/components/schemas/Error" in refs or "InferenceError" in refs, f"{method} {path} {status}"
