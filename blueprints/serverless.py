"""Foundry serverless endpoints: deploy, inspect and delete them, and chat with them through the gateway.

Each route reads the request, calls one service function (`services.serverless` for ARM, blocking, in a worker
thread; `services.serverless_inference` for chat, async) and lets `respond` map the answer.
"""

from __future__ import annotations

import azure.functions as func
from azurefunctions.extensions.http.fastapi import Request, Response

from blueprints.respond import AUTH_LEVEL, in_thread, respond
from services.auth import Role
from services.context import AppContext
from services.request_context import RequestContext
from services.results import OperationResult
from services.web import MAX_JSON_BODY_BYTES, RawBody

bp = func.Blueprint(http_auth_level=AUTH_LEVEL)  # type: ignore[no-untyped-call]  # azure-functions types it not


@bp.route(route="serverless-endpoints", methods=["GET"])
async def list_serverless_endpoints(req: Request) -> Response:
    project = req.query_params.get("project")
    return await respond(
        req,
        Role.DEPLOYMENTS_READ,
        in_thread(lambda app, c, _: {"value": app.serverless.list_endpoints(project, request_id=c.request_id)}),
    )


@bp.route(route="serverless-endpoints/{name}", methods=["GET"])
async def get_serverless_endpoint(req: Request) -> Response:
    project, name = req.query_params.get("project"), req.path_params["name"]
    return await respond(
        req,
        Role.DEPLOYMENTS_READ,
        in_thread(lambda app, c, _: app.serverless.get(project, name, request_id=c.request_id)),
    )


@bp.route(route="serverless-endpoints/{name}", methods=["PUT"])
async def put_serverless_endpoint(req: Request) -> Response:
    project, name, wait = req.query_params.get("project"), req.path_params["name"], req.query_params.get("wait")

    def call(app: AppContext, context: RequestContext, body: RawBody) -> OperationResult:
        return app.serverless.put(project, name, body, wait=wait, request_id=context.request_id, audit=context.audit())

    return await respond(req, Role.DEPLOYMENTS_WRITE, in_thread(call), body_limit=MAX_JSON_BODY_BYTES)


@bp.route(route="serverless-endpoints/{name}", methods=["DELETE"])
async def delete_serverless_endpoint(req: Request) -> Response:
    project, name, wait = req.query_params.get("project"), req.path_params["name"], req.query_params.get("wait")

    def call(app: AppContext, context: RequestContext, _body: RawBody) -> OperationResult:
        return app.serverless.delete(project, name, wait=wait, request_id=context.request_id, audit=context.audit())

    return await respond(req, Role.DEPLOYMENTS_WRITE, in_thread(call))


@bp.route(route="serverless-endpoints/{name}/chat/completions", methods=["POST"])
async def serverless_chat_completions(req: Request) -> Response:
    project, name = req.query_params.get("project"), req.path_params["name"]
    version = req.query_params.get("api-version")
    return await respond(
        req,
        Role.INFERENCE_INVOKE,
        lambda app, c, body: app.serverless_gateway.chat_completions(
            project, name, version, body, request_id=c.request_id, caller=c.caller_id
        ),
        body_limit=lambda app: app.settings.inference.max_body_bytes,
    )
