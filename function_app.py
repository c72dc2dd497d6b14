"""HTTP routes of the Function App (Python V2 programming model, FastAPI request/response types).

Each function names the app role it needs, reads the request, calls one service function and maps its
result or typed error to a response. The logic lives in `services/`; the process's clients live in one
application context (`services.context`). Every response carries `x-request-id`; every error is
`{"error": {"code", "message", "target"}}`. Management calls block on ARM, so they run in worker threads;
inference is async end to end.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import azure.functions as func
from azurefunctions.extensions.http.fastapi import JSONResponse, Request, Response, StreamingResponse

from services.auth import ANONYMOUS, Role, authorize, host_checks_keys
from services.context import AppContext, get_context
from services.errors import RelayedError, ServiceError
from services.request_context import RequestContext
from services.results import OperationResult, ProxyResponse
from services.web import MAX_JSON_BODY_BYTES, RawBody, check_json_content_type, request_id_from

ROUTE_PREFIX = "/api"  # host.json keeps the Functions default routePrefix "api"
MAX_IMAGE_BODY_BYTES = 20 * 1024 * 1024
log = logging.getLogger("function_app")

# Keys are checked by the host only in AUTH_MODE=keys; with Easy Auth (entra) the platform is the gate.
app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION if host_checks_keys() else func.AuthLevel.ANONYMOUS)
get_context().start()  # settings and the audit store's whereabouts are reported when the host starts

# A service call: the process's context, this request's context, the body (empty unless the route reads one).
Call = Callable[[AppContext, RequestContext, RawBody], Awaitable[Any]]
Blocking = Callable[[AppContext, RequestContext, RawBody], Any]


# Deployments


@app.route(route="deployments", methods=["GET"])
async def list_deployments(req: Request) -> Response:
    account = req.query_params.get("account")
    return await _respond(
        req,
        Role.DEPLOYMENTS_READ,
        _in_thread(lambda app, c, _: {"value": app.deployments.list_deployments(account, request_id=c.request_id)}),
    )


@app.route(route="deployments/{name}", methods=["GET"])
async def get_deployment(req: Request) -> Response:
    account, name = req.query_params.get("account"), req.path_params["name"]
    return await _respond(
        req,
        Role.DEPLOYMENTS_READ,
        _in_thread(lambda app, c, _: app.deployments.get(account, name, request_id=c.request_id)),
    )


@app.route(route="deployments/{name}", methods=["PUT"])
async def put_deployment(req: Request) -> Response:
    return await _mutation(req, "put")


@app.route(route="deployments/{name}", methods=["PATCH"])
async def scale_deployment(req: Request) -> Response:
    return await _mutation(req, "scale")


@app.route(route="deployments/{name}", methods=["DELETE"])
async def delete_deployment(req: Request) -> Response:
    return await _mutation(req, "delete")


async def _mutation(req: Request, operation: str) -> Response:
    """PUT, PATCH and DELETE of a deployment: the same reading of the request, the service method by name."""
    account, name, wait = req.query_params.get("account"), req.path_params["name"], req.query_params.get("wait")
    has_body = operation != "delete"

    def call(app: AppContext, context: RequestContext, body: RawBody) -> OperationResult:
        method = getattr(app.deployments, operation)
        arguments = (account, name, body) if has_body else (account, name)
        result: OperationResult = method(*arguments, wait=wait, request_id=context.request_id, audit=context.audit())
        return result

    return await _respond(
        req, Role.DEPLOYMENTS_WRITE, _in_thread(call), body_limit=MAX_JSON_BODY_BYTES if has_body else 0
    )


# Inference


@app.route(route="openai/deployments/{deployment}/chat/completions", methods=["POST"])
async def chat_completions(req: Request) -> Response:
    account, deployment = req.query_params.get("account"), req.path_params["deployment"]
    version = req.query_params.get("api-version")
    return await _respond(
        req,
        Role.INFERENCE_INVOKE,
        lambda app, c, body: app.gateway.chat_completions(
            account, deployment, version, body, request_id=c.request_id, caller=c.caller_id
        ),
        body_limit=lambda app: app.settings.inference.max_body_bytes,  # read no further than the setting
    )


@app.route(route="process_image", methods=["POST"])
async def process_image(req: Request) -> Response:
    from services.images import analyse_image

    query = req.query_params
    want_json = "application/json" in req.headers.get("accept", "")
    return await _respond(
        req,
        Role.INFERENCE_INVOKE,
        lambda app, c, image: analyse_image(
            image,
            instructions=query.get("instructions"),
            deployment=query.get("deployment"),
            max_tokens=query.get("max_tokens"),
            account=query.get("account"),
            want_json=want_json,
            request_id=c.request_id,
            caller=c.caller_id,
            gateway=app.gateway,
        ),
        body_limit=MAX_IMAGE_BODY_BYTES,
        json_body=False,  # the raw image, whatever Content-Type the caller sent (the original contract)
    )


# Fine-tuning jobs


@app.route(route="fine_tuning/jobs/{job_id}", methods=["GET"])
async def get_fine_tuning_job(req: Request) -> Response:
    from services.fine_tuning import get_job

    account, job_id = req.query_params.get("account"), req.path_params["job_id"]
    return await _respond(
        req,
        Role.DEPLOYMENTS_READ,
        lambda app, c, _: get_job(account, job_id, request_id=c.request_id, gateway=app.gateway),
    )


@app.route(route="fine_tuning/jobs/{job_id}/deploy", methods=["POST"])
async def deploy_fine_tuning_job(req: Request) -> Response:
    from services.fine_tuning import deploy_from_job

    account, job_id, wait = req.query_params.get("account"), req.path_params["job_id"], req.query_params.get("wait")
    return await _respond(
        req,
        Role.DEPLOYMENTS_WRITE,
        lambda app, c, body: deploy_from_job(
            account,
            job_id,
            body,
            wait=wait,
            request_id=c.request_id,
            audit=c.audit(),
            gateway=app.gateway,
            deployments=app.deployments,
            run_blocking=app.run_blocking,
        ),
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
            lambda app, _c, _b: query(
                app.audit_store,
                app.settings,
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

    return await _respond(req, None, lambda _a, _c, _b: document())


# Mapping between HTTP and the service layer (no logic of the service's own below).


def _in_thread(call: Blocking) -> Call:
    """A blocking service call (ARM, Table Storage), run in one of the context's worker threads."""

    async def run(app: AppContext, context: RequestContext, body: RawBody) -> Any:
        return await app.run_blocking(call, app, context, body)

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


async def _read_into_buffer(req: Request, limit: int) -> bytearray:
    """A large raw body (an image) read into one buffer, sized from Content-Length when the caller sent one, so
    it is held once, never as a list of chunks plus their join; no further than past the limit (then 413)."""
    declared = req.headers.get("content-length", "")
    size = int(declared) if declared.isascii() and declared.isdigit() else -1
    body = bytearray(size) if 0 <= size <= limit else bytearray()
    filled = 0
    async for chunk in req.stream():
        end = filled + len(chunk)
        if end <= len(body):
            body[filled:end] = chunk
        else:
            del body[filled:]
            body += chunk
        filled = end
        if filled > limit:
            break
    del body[filled:]  # a body shorter than declared (the host refuses one, but the header is not trusted)
    return body


async def _respond(
    req: Request,
    role: Role | None,
    call: Call,
    *,
    body_limit: int | Callable[[AppContext], int] = 0,
    json_body: bool = True,
) -> Response:
    """Authorize, read the body (only then), call the service, and map what comes back."""
    request_id = request_id_from(req.headers)
    headers = {"x-request-id": request_id}
    try:
        app_context = get_context()
        caller = authorize(req.headers, role, app_context.settings) if role is not None else ANONYMOUS
        if body_limit and json_body:
            check_json_content_type(req.headers.get("content-type"))
        body: RawBody = b""
        limit = body_limit(app_context) if callable(body_limit) else body_limit
        if limit:
            body = await (_read_body(req, limit) if json_body else _read_into_buffer(req, limit))
        context = RequestContext(request_id, caller, lambda: app_context.audit_store)
        result = await call(app_context, context, body)
    except RelayedError as error:
        return _proxy_response(ProxyResponse(error.status, error.relayed_headers, body=error.body), request_id)
    except ServiceError as error:
        if error.status >= 500:
            log.warning(
                "%s %s -> %d %s (x-request-id=%s)", req.method, req.url.path, error.status, error.code, request_id
            )
        return JSONResponse(error.to_body(), status_code=error.status, headers={**headers, **error.response_headers()})
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
    if result.resource is None:
        return Response(status_code=result.status, headers=headers)
    return JSONResponse(result.resource, status_code=result.status, headers=headers)


class _ClosingStreamingResponse(StreamingResponse):  # type: ignore[misc]  # the extension ships no types
    """A relayed stream whose upstream side is released when the answer ends, even when the caller left before
    the first chunk (then the stream itself never started, so its own clean-up never runs)."""

    def __init__(self, *args: Any, close: Callable[[], Awaitable[None]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._close = close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):  # a disconnect cancels the answer; the release must still run
                await self._close()


def _proxy_response(result: ProxyResponse, request_id: str) -> Response:
    # x-request-id is this service's id, as on every answer; Azure's own comes back as x-ms-request-id, and
    # apim-request-id as Azure sent it (what Azure support asks for).
    headers = {**result.headers, "x-request-id": request_id, "x-ms-client-request-id": request_id}
    media_type = headers.pop("content-type", None)
    if result.stream is not None and result.close is not None:
        return _ClosingStreamingResponse(
            result.stream, status_code=result.status, headers=headers, media_type=media_type, close=result.close
        )
    if result.stream is not None:
        return StreamingResponse(result.stream, status_code=result.status, headers=headers, media_type=media_type)
    return Response(result.body, status_code=result.status, headers=headers, media_type=media_type)
