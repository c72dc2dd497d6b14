"""HTTP routes of the Function App (Python V2 programming model, FastAPI request/response types).

Each function names the app role it needs, reads the request, calls one service function and maps its
result or typed error to a response. The logic lives in `services/`. Every response carries
`x-request-id`; every error is `{"error": {"code", "message", "target"}}`. Management calls block on ARM,
so they run in worker threads; inference is async end to end.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response, StreamingResponse

from services.auth import ANONYMOUS, RequestContext, Role, authorize, host_checks_keys
from services.deployments import OperationResult, get_service
from services.errors import ServiceError
from services.inference import ProxyResponse
from services.web import MAX_JSON_BODY_BYTES, check_json_content_type, request_id_from, run_blocking

ROUTE_PREFIX = "/api"  # host.json keeps the Functions default routePrefix "api"
MAX_INFERENCE_BODY_BYTES = 100 * 1024 * 1024  # the host's own limit; the service applies its lower setting
MAX_IMAGE_BODY_BYTES = 20 * 1024 * 1024
log = logging.getLogger("function_app")

# Keys are checked by the host only in AUTH_MODE=keys; with Easy Auth (entra) the platform is the gate.
app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION if host_checks_keys() else func.AuthLevel.ANONYMOUS)

Call = Callable[[RequestContext, bytes], Awaitable[Any]]


# Deployments


@app.route(route="deployments", methods=["GET"])
async def list_deployments(req: Request) -> Response:
    account = req.query_params.get("account")
    return await _respond(
        req,
        Role.DEPLOYMENTS_READ,
        _in_thread(lambda c, _: {"value": get_service().list_deployments(account, request_id=c.request_id)}),
    )


@app.route(route="deployments/{name}", methods=["GET"])
async def get_deployment(req: Request) -> Response:
    account, name = req.query_params.get("account"), req.path_params["name"]
    return await _respond(
        req, Role.DEPLOYMENTS_READ, _in_thread(lambda c, _: get_service().get(account, name, request_id=c.request_id))
    )


@app.route(route="deployments/{name}", methods=["PUT"])
async def put_deployment(req: Request) -> Response:
    account, name, wait = req.query_params.get("account"), req.path_params["name"], req.query_params.get("wait")
    return await _respond(
        req,
        Role.DEPLOYMENTS_WRITE,
        _in_thread(
            lambda c, body: get_service().put(account, name, body, wait=wait, request_id=c.request_id, audit=c.audit())
        ),
        body_limit=MAX_JSON_BODY_BYTES,
    )


@app.route(route="deployments/{name}", methods=["PATCH"])
async def scale_deployment(req: Request) -> Response:
    account, name, wait = req.query_params.get("account"), req.path_params["name"], req.query_params.get("wait")
    return await _respond(
        req,
        Role.DEPLOYMENTS_WRITE,
        _in_thread(
            lambda c, body: get_service().scale(
                account, name, body, wait=wait, request_id=c.request_id, audit=c.audit()
            )
        ),
        body_limit=MAX_JSON_BODY_BYTES,
    )


@app.route(route="deployments/{name}", methods=["DELETE"])
async def delete_deployment(req: Request) -> Response:
    account, name, wait = req.query_params.get("account"), req.path_params["name"], req.query_params.get("wait")
    return await _respond(
        req,
        Role.DEPLOYMENTS_WRITE,
        _in_thread(
            lambda c, _: get_service().delete(account, name, wait=wait, request_id=c.request_id, audit=c.audit())
        ),
    )


# Inference


@app.route(route="openai/deployments/{deployment}/chat/completions", methods=["POST"])
async def chat_completions(req: Request) -> Response:
    from services.inference import get_gateway

    account, deployment = req.query_params.get("account"), req.path_params["deployment"]
    version = req.query_params.get("api-version")
    return await _respond(
        req,
        Role.INFERENCE_INVOKE,
        lambda c, body: get_gateway().chat_completions(
            account, deployment, version, body, request_id=c.request_id, caller=c.caller_id
        ),
        body_limit=MAX_INFERENCE_BODY_BYTES,
    )


@app.route(route="process_image", methods=["POST"])
async def process_image(req: Request) -> Response:
    from services.images import analyse_image

    query = req.query_params
    want_json = "application/json" in req.headers.get("accept", "")
    return await _respond(
        req,
        Role.INFERENCE_INVOKE,
        lambda c, image: analyse_image(
            image,
            instructions=query.get("instructions"),
            deployment=query.get("deployment"),
            max_tokens=query.get("max_tokens"),
            account=query.get("account"),
            want_json=want_json,
            request_id=c.request_id,
            caller=c.caller_id,
        ),
        body_limit=MAX_IMAGE_BODY_BYTES,
        json_body=False,  # the raw image, whatever Content-Type the caller sent (the original contract)
    )


# Fine-tuning jobs


@app.route(route="fine_tuning/jobs/{job_id}", methods=["GET"])
async def get_fine_tuning_job(req: Request) -> Response:
    from services.fine_tuning import get_job

    account, job_id = req.query_params.get("account"), req.path_params["job_id"]
    return await _respond(req, Role.DEPLOYMENTS_READ, lambda c, _: get_job(account, job_id, request_id=c.request_id))


@app.route(route="fine_tuning/jobs/{job_id}/deploy", methods=["POST"])
async def deploy_fine_tuning_job(req: Request) -> Response:
    from services.fine_tuning import deploy_from_job

    account, job_id, wait = req.query_params.get("account"), req.path_params["job_id"], req.query_params.get("wait")
    return await _respond(
        req,
        Role.DEPLOYMENTS_WRITE,
        lambda c, body: deploy_from_job(account, job_id, body, wait=wait, request_id=c.request_id, audit=c.audit()),
        body_limit=MAX_JSON_BODY_BYTES,
    )


# Audit trail and contract


@app.route(route="audit", methods=["GET"])
async def query_audit(req: Request) -> Response:
    from services.audit import query

    q = req.query_params
    return await _respond(
        req,
        Role.AUDIT_READ,
        _in_thread(
            lambda c, _: query(
                deployment=q.get("deployment"),
                account=q.get("account"),
                since=q.get("since"),
                until=q.get("until"),
                top=q.get("top"),
                continuation=q.get("continuationToken"),
            )
        ),
    )


@app.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def openapi_document(req: Request) -> Response:
    from services.contract import openapi_document as document

    return await _respond(req, None, lambda _c, _b: document())


# Mapping between HTTP and the service layer (no logic of the service's own below).


def _in_thread(call: Callable[[RequestContext, bytes], Any]) -> Call:
    """A blocking service call (ARM, Table Storage), run in a worker thread."""

    async def run(context: RequestContext, body: bytes) -> Any:
        return await run_blocking(call, context, body)

    return run


async def _read_body(req: Request, limit: int) -> bytes:
    """The body, read no further than past the limit: the service then answers 413 for it."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in req.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _respond(
    req: Request, role: Role | None, call: Call, *, body_limit: int = 0, json_body: bool = True
) -> Response:
    """Authorize, read the body (only then), call the service, and map what comes back."""
    request_id = request_id_from(req.headers)
    headers = {"x-request-id": request_id}
    try:
        caller = authorize(req.headers, role) if role is not None else ANONYMOUS
        if body_limit and json_body:
            check_json_content_type(req.headers.get("content-type"))
        body = await _read_body(req, body_limit) if body_limit else b""
        result = await call(RequestContext(request_id, caller), body)
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
    if isinstance(result, dict) and isinstance(result.get("nextLink"), str):
        result = {**result, "nextLink": ROUTE_PREFIX + result["nextLink"]}
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
