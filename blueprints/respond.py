"""The mapping between HTTP and the service layer, shared by every route of the Function App and its blueprints.

`respond` authorizes the caller, reads the body (only then, and no further than its limit), calls one service
function and maps what comes back: an `OperationResult` to 200/201/202/204 with `Location` and `Retry-After`, a
`ProxyResponse` to a relayed (possibly streamed) answer, a typed `ServiceError` to the error shape, anything else
to 500 naming the `x-request-id`. Nothing here knows a service's own logic.
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
from services.web import RawBody, check_json_content_type, request_id_from

__all__ = ["AUTH_LEVEL", "ROUTE_PREFIX", "Blocking", "Call", "in_thread", "respond"]

ROUTE_PREFIX = "/api"  # host.json keeps the Functions default routePrefix "api"
# Keys are checked by the host only in AUTH_MODE=keys; with Easy Auth (entra) the platform is the gate.
AUTH_LEVEL = func.AuthLevel.FUNCTION if host_checks_keys() else func.AuthLevel.ANONYMOUS
log = logging.getLogger("function_app")

# A service call: the process's context, this request's context, the body (empty unless the route reads one).
Call = Callable[[AppContext, RequestContext, RawBody], Awaitable[Any]]
Blocking = Callable[[AppContext, RequestContext, RawBody], Any]


def in_thread(call: Blocking) -> Call:
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


async def respond(
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
