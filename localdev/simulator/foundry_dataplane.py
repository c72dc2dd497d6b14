"""The data plane of each simulated serverless endpoint (Azure AI model inference API chat completions), and the
control calls tests use to change an endpoint from outside ARM.

`POST /serverless/<workspace GUID>/<endpoint>/chat/completions` (the endpoint's `inferenceEndpoint.uri` + the
route), plain or streamed, answered as the Azure OpenAI data plane of this simulator answers (deterministic
echo). The key is checked as `Authorization: Bearer <key>` (or `api-key`): missing or not one of the endpoint's
two keys is 401, so a key regenerated through ARM stops working at once. An endpoint that is not Online answers
404. With content safety on, `trigger-content-filter` is refused as Azure does.

Control (`/_sim/foundry`): `POST endpoints/{workspace}/{name}` with `{"suspended": true|false}` and/or
`{"regenerate": "Primary"|"Secondary"}`; `GET state` (endpoints with their states and subscriptions, never a key).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from .chat_answer import answer_chat, blocks_prompt
from .chat_render import DONE_EVENT, CompletionMeta, completion_json, sse_event, stream_chunks
from .chat_request import parse_chat_request
from .dataplane_errors import DataPlaneError, content_filtered, gateway_error
from .foundry import regenerate
from .foundry_state import ProjectState, ServerlessEndpoint
from .runtime import SimulatorRuntime

_PATH = re.compile(r"^/serverless/(?P<workspace>[^/]+)/(?P<name>[^/]+)(?P<rest>/.*)?$")
_CHAT = re.compile(r"^(/v1)?/chat/completions/?$")


class ServerlessDataPlane:
    def __init__(self, runtime: SimulatorRuntime) -> None:
        self._runtime = runtime

    async def handle(self, request: Request) -> Response:
        try:
            return await self._handle(request)
        except DataPlaneError as error:
            return error.to_response()

    async def _handle(self, request: Request) -> Response:
        match = _PATH.match(request.url.path)
        found = self._endpoint(match["workspace"], match["name"]) if match else None
        if match is None or found is None or not _CHAT.match(match["rest"] or "") or request.method != "POST":
            raise gateway_error(404, "NotFound", "Resource not found")
        _, endpoint = found
        self._authenticate(request, endpoint)
        now = self._runtime.state.now()
        if endpoint.endpoint_state(now) != "Online":
            raise gateway_error(404, "NotFound", f"Endpoint is {endpoint.endpoint_state(now)}; it does not serve.")
        chat = parse_chat_request(await request.body())
        if endpoint.content_safety == "Enabled" and blocks_prompt(chat):
            raise content_filtered()
        answer = answer_chat(chat)
        meta = CompletionMeta(f"{uuid.uuid4().hex}", int(time.time()), endpoint.model_id.split("/models/")[-1])
        if not chat.stream:
            return JSONResponse(completion_json(meta, answer))
        chunks = list(stream_chunks(meta, answer, chat.include_usage))
        delay = self._runtime.config.stream_chunk_delay_ms / 1000
        return StreamingResponse(_events(chunks, delay), media_type="text/event-stream")

    def _endpoint(self, workspace: str, name: str) -> tuple[ProjectState, ServerlessEndpoint] | None:
        foundry = self._runtime.foundry
        foundry.settle(self._runtime.state.now())
        for project in foundry.projects.values():
            if project.config.workspace_id.lower() == workspace.lower():
                endpoint = project.endpoints.get(name.lower())
                return (project, endpoint) if endpoint is not None else None
        return None

    @staticmethod
    def _authenticate(request: Request, endpoint: ServerlessEndpoint) -> None:
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not key:
            key = request.headers.get("api-key", "")
        if not key:
            raise gateway_error(401, "Unauthorized", "Authorization header is missing: send Bearer <endpoint key>.")
        if not endpoint.accepts(key):
            raise gateway_error(401, "Unauthorized", "The key is not valid for this endpoint.")


async def _events(chunks: list[dict[str, Any]], delay: float) -> AsyncIterator[bytes]:
    for index, chunk in enumerate(chunks):
        if index and delay:
            await asyncio.sleep(delay)
        yield sse_event(chunk)
    yield DONE_EVENT


def foundry_control_routes(runtime: SimulatorRuntime) -> list[BaseRoute]:
    async def state(request: Request) -> Response:
        now = runtime.state.now()
        runtime.foundry.settle(now)
        return JSONResponse(
            {
                "projects": [
                    {
                        "workspaceName": project.config.workspace_name,
                        "endpoints": [
                            {
                                "name": endpoint.name,
                                "modelId": endpoint.model_id,
                                "provisioningState": endpoint.provisioning_state(now),
                                "endpointState": endpoint.endpoint_state(now),
                                "marketplaceSubscriptionId": endpoint.marketplace_subscription_id,
                            }
                            for endpoint in project.endpoints.values()
                        ],
                        "marketplaceSubscriptions": [
                            {"name": item.name, "modelId": item.model_id} for item in project.subscriptions.values()
                        ],
                    }
                    for project in runtime.foundry.projects.values()
                ]
            }
        )

    async def change_endpoint(request: Request) -> Response:
        workspace, name = request.path_params["workspace"], request.path_params["name"]
        body = await request.json()
        for project in runtime.foundry.projects.values():
            if project.config.workspace_name.lower() == workspace.lower() and name.lower() in project.endpoints:
                endpoint = project.endpoints[name.lower()]
                if isinstance(body.get("suspended"), bool):
                    endpoint.suspended = body["suspended"]
                if body.get("regenerate") in ("Primary", "Secondary"):
                    regenerate(endpoint, body["regenerate"])
                return JSONResponse({"name": endpoint.name, "suspended": endpoint.suspended})
        return JSONResponse({"error": {"code": "NotFound", "message": f"No endpoint {workspace}/{name}."}}, 404)

    return [
        Route("/state", state, methods=["GET"]),
        Route("/endpoints/{workspace}/{name}", change_endpoint, methods=["POST"]),
    ]
