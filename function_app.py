"""HTTP routes of the Function App (Python V2 programming model, FastAPI request/response types).

Each function reads the request, calls one service function and maps its result or typed error to a
response. The logic lives in `services/`. Every response carries `x-request-id`; every error is
`{"error": {"code", "message", "target"}}`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response

from services.deployments import OperationResult, get_service
from services.errors import ServiceError
from services.web import MAX_JSON_BODY_BYTES, request_id_from, run_blocking

ROUTE_PREFIX = "/api"  # host.json keeps the Functions default routePrefix "api"
log = logging.getLogger("function_app")

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="deployments", methods=["GET"])
async def list_deployments(req: Request) -> Response:
    account = req.query_params.get("account")
    return await _respond(req, lambda rid: {"value": get_service().list_deployments(account, request_id=rid)})


@app.route(route="deployments/{name}", methods=["GET"])
async def get_deployment(req: Request) -> Response:
    account, name = req.query_params.get("account"), req.path_params["name"]
    return await _respond(req, lambda rid: get_service().get(account, name, request_id=rid))


@app.route(route="deployments/{name}", methods=["PUT"])
async def put_deployment(req: Request) -> Response:
    account, name, wait = req.query_params.get("account"), req.path_params["name"], req.query_params.get("wait")
    body = await _read_body(req)
    return await _respond(req, lambda rid: get_service().put(account, name, body, wait=wait, request_id=rid))


@app.route(route="deployments/{name}", methods=["PATCH"])
async def scale_deployment(req: Request) -> Response:
    account, name, wait = req.query_params.get("account"), req.path_params["name"], req.query_params.get("wait")
    body = await _read_body(req)
    return await _respond(req, lambda rid: get_service().scale(account, name, body, wait=wait, request_id=rid))


@app.route(route="deployments/{name}", methods=["DELETE"])
async def delete_deployment(req: Request) -> Response:
    account, name, wait = req.query_params.get("account"), req.path_params["name"], req.query_params.get("wait")
    return await _respond(req, lambda rid: get_service().delete(account, name, wait=wait, request_id=rid))


# Mapping between HTTP and the service layer (no logic of the service's own below).


async def _read_body(req: Request, limit: int = MAX_JSON_BODY_BYTES) -> bytes:
    """The body, read no further than one byte past the limit: the service then answers 413 for it."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in req.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)[: limit + 1]


async def _respond(req: Request, call: Callable[[str], Any]) -> Response:
    request_id = request_id_from(req.headers)
    headers = {"x-request-id": request_id}
    try:
        result = await run_blocking(call, request_id)
    except ServiceError as error:
        if error.status >= 500:
            log.warning(
                "%s %s -> %d %s (x-request-id=%s)", req.method, req.url.path, error.status, error.code, request_id
            )
        return JSONResponse(error.to_body(), status_code=error.status, headers={**headers, **error.headers})
    except Exception:
        log.exception("Unhandled error on %s %s (x-request-id=%s)", req.method, req.url.path, request_id)
        body = {
            "error": {
                "code": "InternalServerError",
                "message": f"The service failed unexpectedly. Quote x-request-id {request_id} when reporting it.",
            }
        }
        return JSONResponse(body, status_code=500, headers=headers)
    if isinstance(result, OperationResult):
        return _operation_response(result, headers)
    return JSONResponse(result, status_code=200, headers=headers)


def _operation_response(result: OperationResult, headers: dict[str, str]) -> Response:
    if result.correlation_id:
        headers["x-ms-correlation-request-id"] = result.correlation_id
    if result.location:
        headers["Location"] = ROUTE_PREFIX + result.location
    if result.retry_after is not None:
        headers["Retry-After"] = str(result.retry_after)
    if result.deployment is None:
        return Response(status_code=result.status, headers=headers)
    return JSONResponse(result.deployment, status_code=result.status, headers=headers)
