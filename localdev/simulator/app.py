"""build_app: identity endpoint, ARM, the Azure OpenAI data plane and the control API on one Starlette app."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Mount, Route

from .arm import ArmApi, ThrottleBudget, decorate_arm_response, is_arm_path
from .config import parse_config
from .control import control_routes
from .dataplane import DATA_PLANE_PREFIX, DataPlaneApi
from .dataplane_errors import gateway_error
from .entra import DISCOVERY_PATH, TOKEN_PATH
from .entra import discovery as entra_discovery
from .entra import token as entra_token
from .errors import ArmError, identity_error_response
from .faults import Fault
from .foundry import SERVERLESS_PREFIX, FoundryArm
from .foundry_dataplane import ServerlessDataPlane, foundry_control_routes
from .identity import handle_token_request
from .metrics import MetricsApi, is_metrics_path, usage_routes
from .observe import RequestRecord, elide_long_strings, parse_logged_body
from .runtime import SimulatorRuntime
from .tenancy import bearer_tokens, unverified_tenant

logger = logging.getLogger("localdev.simulator")

IDENTITY_ENDPOINT_PATH = "/msi/token"
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
Handler = Callable[[Request], Awaitable[Response]]
FaultMessage = Callable[[Request, Fault], str | None]


def build_app(
    config: dict[str, Any] | None = None,
    identity_header: str | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> Starlette:
    """The whole simulator as an ASGI app; `app.state.simulator` is its SimulatorRuntime.

    Raises config.ConfigError for an invalid config. Without `identity_header` a random secret is
    made up; read it back from `app.state.simulator.identity_header`.
    """
    runtime = SimulatorRuntime(parse_config(config), identity_header or secrets.token_urlsafe(24), clock)
    arm = ArmApi(runtime, more=FoundryArm(runtime).handle)
    serverless = ServerlessDataPlane(runtime)
    budget = ThrottleBudget(clock)
    dataplane = DataPlaneApi(runtime)
    metrics = MetricsApi(runtime)

    async def issue_token(request: Request) -> Response:
        if request.method != "GET":
            return identity_error_response(405, f"The method '{request.method}' is not allowed; use GET.")
        return await handle_token_request(request, runtime.config, runtime.identity_header, runtime.tokens)

    async def unknown_path(request: Request) -> Response:
        raise ArmError(404, "NotFound", f"The simulator does not serve '{request.url.path}'.")

    async def token_endpoint(request: Request) -> Response:
        runtime.observer.note_token_request(request.query_params.get("resource"))
        return await _observed(runtime, "identity", request, issue_token)

    async def arm_or_unknown(request: Request) -> Response:
        if not is_arm_path(request.url.path):
            return await _observed(runtime, "other", request, unknown_path)
        if is_metrics_path(request.url.path):  # Azure Monitor, on ARM's front door with its own api-versions
            return await _observed(runtime, "arm", request, metrics.handle)
        response = await _observed(runtime, "arm", request, arm.handle)
        decorate_arm_response(request, response, budget)
        return response

    async def dataplane_endpoint(request: Request) -> Response:
        response = await _observed(runtime, "dataplane", request, dataplane.handle, dataplane.fault_message)
        dataplane.decorate(request, response)
        return response

    async def serverless_endpoint(request: Request) -> Response:
        return await _observed(runtime, "dataplane", request, serverless.handle)

    async def entra_token_endpoint(request: Request) -> Response:
        async def handle(request: Request) -> Response:
            return await entra_token(request, runtime.config, runtime.tokens)

        return await _observed(runtime, "entra", request, handle)

    async def entra_discovery_endpoint(request: Request) -> Response:
        async def handle(request: Request) -> Response:
            return entra_discovery(request, runtime.config)

        return await _observed(runtime, "entra", request, handle)

    app = Starlette(
        routes=[
            Mount("/_sim/foundry", routes=foundry_control_routes(runtime)),
            Mount("/_sim", routes=[*control_routes(runtime), *usage_routes(runtime)]),
            Route(IDENTITY_ENDPOINT_PATH, token_endpoint, methods=ALL_METHODS),
            Route(TOKEN_PATH, entra_token_endpoint, methods=["POST"]),
            Route(DISCOVERY_PATH, entra_discovery_endpoint, methods=["GET"]),
            Route(DATA_PLANE_PREFIX + "/{path:path}", dataplane_endpoint, methods=ALL_METHODS),
            Route(SERVERLESS_PREFIX + "/{path:path}", serverless_endpoint, methods=ALL_METHODS),
            Route("/{path:path}", arm_or_unknown, methods=ALL_METHODS),
        ]
    )
    app.state.simulator = runtime
    return app


async def _observed(
    runtime: SimulatorRuntime,
    scope: str,
    request: Request,
    handler: Handler,
    fault_message: FaultMessage | None = None,
) -> Response:
    """Apply faults, run the handler, log the exchange; shared by all scopes.

    `fault_message` supplies the scope's realistic text for a fault that names no message.
    """
    runtime.observer.note_connection(_client(request))
    raw_body = await request.body()
    fault = runtime.faults.take(scope, request.method, request.url.path) if scope != "other" else None
    if fault is not None and fault.delay_seconds:
        await asyncio.sleep(fault.delay_seconds)
    if fault is not None and fault.status is not None:
        response: Response = fault.response(scope, fault_message(request, fault) if fault_message else None)
    elif fault is not None and fault.drop == "beforeAnswer":
        response = DroppedConnection()
    else:
        try:
            response = await handler(request)
        except ArmError as error:
            response = error.to_response()
        except Exception:  # a simulator bug must still answer in the scope's shape and be logged
            logger.exception("simulator failed on %s %s", request.method, request.url.path)
            if scope == "identity":
                response = identity_error_response(500, "The simulator failed; see its log.")
            elif scope == "dataplane":
                response = gateway_error(500, "InternalServerError", "The simulator failed; see its log.").to_response()
            else:
                response = ArmError(500, "InternalServerError", "The simulator failed; see its log.").to_response()
    if fault is not None and fault.drop == "afterFirstChunk" and isinstance(response, StreamingResponse):
        response.body_iterator = _cut_after_first(response.body_iterator, request.receive)
    logged_body = parse_logged_body(raw_body)
    if scope == "dataplane":
        logged_body = elide_long_strings(logged_body)
    runtime.observer.record(
        RequestRecord(
            seq=runtime.observer.next_seq(),
            time=time.time(),
            scope=scope,
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            status=response.status_code,
            client_request_id=request.headers.get("x-ms-client-request-id"),
            correlation_id=request.headers.get("x-ms-correlation-request-id"),
            body=logged_body,
            fault=fault.fault_id if fault is not None else None,
            token_tenant=unverified_tenant(request.headers.get("authorization", "").partition(" ")[2]),
            auxiliary_tenants=[
                [unverified_tenant(token) for token in bearer_tokens([value])]
                for value in request.headers.getlist("x-ms-authorization-auxiliary")
            ],
        )
    )
    return response


class DroppedConnection(Response):
    """No answer at all: the connection is closed before any byte of a response (logged with status 0)."""

    def __init__(self) -> None:
        super().__init__(status_code=200)
        self.status_code = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        _close_connection(receive)
        await asyncio.sleep(0.01)  # let the server see the connection gone before it would answer


async def _cut_after_first(chunks: AsyncIterable[Any], receive: Any) -> AsyncIterator[Any]:
    """The first chunk of a stream, then the connection closed without the rest (no terminating chunk)."""
    async for chunk in chunks:
        yield chunk
        break
    await asyncio.sleep(0.02)  # the first chunk reaches the socket before it closes
    _close_connection(receive)
    await asyncio.sleep(0.01)


def _close_connection(receive: Any) -> None:
    """Close the client's connection: the server's own transport, reached through its ASGI `receive` callable
    (uvicorn's request cycle holds it)."""
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    if transport is None:
        raise RuntimeError("the simulator cannot drop this connection: not served by uvicorn")
    transport.close()


def _client(request: Request) -> tuple[str, int] | None:
    client = request.client
    return (client.host, client.port) if client is not None else None
