"""HTTP routes of the Function App (Python V2 programming model, FastAPI request/response types).

Each function reads the request, calls one service function and maps its result or typed error to a
response. The logic lives in `services/`. Every response carries `x-request-id`; every error is
`{"error": {"code", "message", "target"}}`. Management calls block on ARM, so they run in worker threads;
inference is async end to end.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response, StreamingResponse

from services.deployments import OperationResult, get_service
from services.errors import ServiceError
from services.inference import ProxyResponse
from services.web import MAX_JSON_BODY_BYTES, request_id_from, run_blocking

ROUTE_PREFIX = "/api"  # host.json keeps the Functions default routePrefix "api"
MAX_INFERENCE_BODY_BYTES = 100 * 1024 * 1024  # the host's own limit; the service applies its lower setting
MAX_IMAGE_BODY_BYTES = 20 * 1024 * 1024
log = logging.getLogger("function_app")

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


# Deployments


@app.route(route="deployments", methods=["GET"])
async def list_deployments(req: Request) -> Response:
    account = req.query_params.get("account")
    return await _blocking(req, lambda rid: {"value": get_service().list_deployments(account, request_id=rid)})


@app.route(route="deployments/{name}", methods=["GET"])
async def get_deployment(req: Request) -> Response:
    account, name = req.query_params.get("account"), req.path_params["name"]
    return await _blocking(req, lambda rid: get_service().get(account, name, request_id=rid))


@app.route(route="deployments/{name}", methods=["PUT"])
async def put_deployment(req: Request) -> Response:
    account, name, wait = req.query_params.get("account"), req.path_params["name"], req.query_params.get("wait")
    body = await _read_body(req, MAX_JSON_BODY_BYTES)
    return await _blocking(req, lambda rid: get_service().put(account, name, body, wait=wait, request_id=rid))


@app.route(route="deployments/{name}", methods=["PATCH"])
async def scale_deployment(req: Request) -> Response:
    account, name, wait = req.query_params.get("account"), req.path_params["name"], req.query_params.get("wait")
    body = await _read_body(req, MAX_JSON_BODY_BYTES)
    return await _blocking(req, lambda rid: get_service().scale(account, name, body, wait=wait, request_id=rid))


@app.route(route="deployments/{name}", methods=["DELETE"])
async def delete_deployment(req: Request) -> Response:
    account, name, wait = req.query_params.get("account"), req.path_params["name"], req.query_params.get("wait")
    return await _blocking(req, lambda rid: get_service().delete(account, name, wait=wait, request_id=rid))


# Inference


@app.route(route="openai/deployments/{deployment}/chat/completions", methods=["POST"])
async def chat_completions(req: Request) -> Response:
    from services.inference import get_gateway

    account, deployment = req.query_params.get("account"), req.path_params["deployment"]
    version = req.query_params.get("api-version")
    body = await _read_body(req, MAX_INFERENCE_BODY_BYTES)
    return await _async(
        req, lambda rid: get_gateway().chat_completions(account, deployment, version, body, request_id=rid)
    )


@app.route(route="process_image", methods=["POST"])
async def process_image(req: Request) -> Response:
    from services.images import analyse_image

    query = req.query_params
    want_json = "application/json" in req.headers.get("accept", "")
    image = await _read_body(req, MAX_IMAGE_BODY_BYTES)
    return await _async(
        req,
        lambda rid: analyse_image(
            image,
            instructions=query.get("instructions"),
            deployment=query.get("deployment"),
            max_tokens=query.get("max_tokens"),
            account=query.get("account"),
            want_json=want_json,
            request_id=rid,
        ),
    )


# Fine-tuning jobs


@app.route(route="fine_tuning/jobs/{job_id}", methods=["GET"])
async def get_fine_tuning_job(req: Request) -> Response:
    from services.fine_tuning import get_job

    account, job_id = req.query_params.get("account"), req.path_params["job_id"]
    return await _async(req, lambda rid: get_job(account, job_id, request_id=rid))


@app.route(route="fine_tuning/jobs/{job_id}/deploy", methods=["POST"])
async def deploy_fine_tuning_job(req: Request) -> Response:
    from services.fine_tuning import deploy_from_job

    account, job_id, wait = req.query_params.get("account"), req.path_params["job_id"], req.query_params.get("wait")
    body = await _read_body(req, MAX_JSON_BODY_BYTES)
    return await _async(req, lambda rid: deploy_from_job(account, job_id, body, wait=wait, request_id=rid))


# Mapping between HTTP and the service layer (no logic of the service's own below).


async def _read_body(req: Request, limit: int) -> bytes:
    """The body, read no further than one byte past the limit: the service then answers 413 for it."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in req.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)[: limit + 1]


async def _blocking(req: Request, call: Callable[[str], Any]) -> Response:
    """A blocking service call (ARM), run in a worker thread."""
    return await _respond(req, lambda rid: run_blocking(call, rid))


async def _async(req: Request, call: Callable[[str], Awaitable[Any]]) -> Response:
    return await _respond(req, call)


async def _respond(req: Request, call: Callable[[str], Awaitable[Any]]) -> Response:
    request_id = request_id_from(req.headers)
    headers = {"x-request-id": request_id}
    try:
        result = await call(request_id)
    except ServiceError as error:
        if error.status >= 500:
            log.warning(
                "%s %s -> %d %s (x-request-id=%s)", req.method, req.url.path, error.status, error.code, request_id
            )
        return JSONResponse(error.to_body(), status_code=error.status, headers={**headers, **error.headers})
    except Exception:
        log.exception("Unhandled error on %s %s (x-request-id=%s)", req.method, req.url.path, request_id)
        message = f"The service failed unexpectedly. Quote x-request-id {request_id} when reporting it."
        return JSONResponse({"error": {"code": "InternalServerError", "message": message}}, 500, headers=headers)
    if isinstance(result, OperationResult):
        return _operation_response(result, headers)
    if isinstance(result, ProxyResponse):
        return _proxy_response(result, request_id)
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


def _proxy_response(result: ProxyResponse, request_id: str) -> Response:
    # Upstream's x-request-id / apim-request-id stay as Azure sent them (what support asks for); this
    # service's id travels as x-ms-client-request-id, which it also sent upstream.
    headers = {"x-request-id": request_id, **result.headers, "x-ms-client-request-id": request_id}
    media_type = headers.pop("content-type", None)
    if result.stream is not None:
        return StreamingResponse(result.stream, status_code=result.status, headers=headers, media_type=media_type)
    return Response(result.body, status_code=result.status, headers=headers, media_type=media_type)
