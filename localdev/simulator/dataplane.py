"""The Azure OpenAI data plane of every configured account, at `/dataplane/<accountName>/openai/...`.

It shares state with the ARM side: a deployment answers only while ARM shows it Succeeded, and
the fine-tuning jobs of an account's config make their models deployable through ARM.
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

from .chat_answer import answer_chat, blocks_prompt
from .chat_render import DONE_EVENT, CompletionMeta, completion_json, sse_event, stream_chunks
from .chat_request import parse_chat_request
from .config import AccountConfig
from .dataplane_errors import (
    KEY_AUTH_DISABLED_MESSAGE,
    MISSING_AUTH_MESSAGE,
    DataPlaneError,
    access_denied,
    content_filtered,
    deployment_not_found,
    gateway_error,
    rate_limit_message,
    resource_not_found,
)
from .faults import Fault
from .fine_tuning import find_job, job_json, list_checkpoints, list_jobs
from .identity import DATA_PLANE_AUDIENCES, TokenRejected
from .inference_budget import InferenceBudget
from .runtime import SimulatorRuntime
from .state import AccountState, Deployment, OperationKind

DATA_PLANE_PREFIX = "/dataplane"
DEFAULT_API_VERSION = "2024-10-21"  # shown in messages about requests that sent none
_ACCOUNT_PATH = re.compile(r"^/dataplane/(?P<account>[^/]+)(?P<rest>/.*)?$")
_CHAT_PATH = re.compile(r"^/openai/deployments/(?P<deployment>[^/]+)/chat/completions/?$")
_JOBS_PATH = re.compile(r"^/openai/fine_tuning/jobs/?$")
_JOB_PATH = re.compile(r"^/openai/fine_tuning/jobs/(?P<job>[^/]+)/?$")
_CHECKPOINTS_PATH = re.compile(r"^/openai/fine_tuning/jobs/(?P<job>[^/]+)/checkpoints/?$")
_UNAUTHORIZED_PREFIX = (
    "Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), "
    "or have expired."
)
# While these run the old deployment keeps serving; a create has nothing to serve yet, a delete stops it.
_SERVING_OPERATIONS = frozenset({OperationKind.UPDATE, OperationKind.PATCH})


class DataPlaneApi:
    def __init__(self, runtime: SimulatorRuntime) -> None:
        self._runtime = runtime
        self._budget = InferenceBudget(runtime.state.clock)

    async def handle(self, request: Request) -> Response:
        try:
            return await self._handle(request)
        except DataPlaneError as error:
            return error.to_response()

    def decorate(self, request: Request, response: Response) -> None:
        """Headers on every data-plane answer, errors and injected faults included."""
        headers = response.headers
        headers["apim-request-id"] = str(uuid.uuid4())
        headers["x-request-id"] = str(uuid.uuid4())
        account = self._account_config(request.url.path)
        if account is not None:
            headers["x-ms-region"] = account.location
        client_request_id = request.headers.get("x-ms-client-request-id")
        if client_request_id:
            headers["x-ms-client-request-id"] = client_request_id

    def fault_message(self, request: Request, fault: Fault) -> str | None:
        """The service's own text for an injected 429, when the fault names no message."""
        if fault.status != 429:
            return None
        seconds = fault.retry_after
        if seconds is None and fault.retry_after_ms is not None:
            seconds = fault.retry_after_ms / 1000
        rest = self._rest(request.url.path)
        operation = "ChatCompletions_Create" if _CHAT_PATH.match(rest) else "FineTuning_Jobs"
        api_version = request.query_params.get("api-version") or DEFAULT_API_VERSION
        return rate_limit_message(operation, api_version, seconds)

    # --- front door -----------------------------------------------------------------------------

    def _account_config(self, path: str) -> AccountConfig | None:
        match = _ACCOUNT_PATH.match(path)
        return self._runtime.config.find_account_by_name(match["account"]) if match else None

    @staticmethod
    def _rest(path: str) -> str:
        match = _ACCOUNT_PATH.match(path)
        return (match["rest"] or "") if match else ""

    def _account(self, request: Request) -> AccountState:
        config = self._account_config(request.url.path)
        account = self._runtime.state.accounts.get(config.key) if config is not None else None
        if account is None:
            raise resource_not_found()  # no such endpoint: as if the host name did not resolve
        return account

    def _authenticate(self, request: Request) -> None:
        # Keys are refused outright: the service under test must only ever use its managed identity.
        if "api-key" in request.headers:
            raise gateway_error(401, "AuthenticationTypeDisabled", KEY_AUTH_DISABLED_MESSAGE)
        authorization = request.headers.get("authorization")
        if not authorization:
            raise access_denied(MISSING_AUTH_MESSAGE)
        try:
            claims = self._runtime.tokens.verify(authorization, DATA_PLANE_AUDIENCES)
        except TokenRejected as rejected:
            raise access_denied(f"{_UNAUTHORIZED_PREFIX} {rejected.message}") from None
        account = self._account_config(request.url.path)
        expected = self._runtime.config.tenant_of(account) if account is not None else None
        if expected is not None and str(claims.get("tid", "")).lower() != expected:
            raise access_denied(f"{_UNAUTHORIZED_PREFIX} The token's tenant does not own this resource.")

    def _check_api_version(self, request: Request) -> None:
        api_version = request.query_params.get("api-version")
        if not api_version:
            raise resource_not_found()
        if api_version not in self._runtime.config.data_plane_api_versions:
            raise gateway_error(400, "BadRequest", "API version not supported")

    async def _handle(self, request: Request) -> Response:
        config = self._runtime.config
        if config.data_plane_latency_ms:
            await asyncio.sleep(config.data_plane_latency_ms / 1000)
        account = self._account(request)
        self._authenticate(request)
        self._check_api_version(request)
        rest = self._rest(request.url.path)
        method = request.method.upper()
        jobs = self._runtime.current_jobs(account.config.fine_tuning_jobs)
        query = dict(request.query_params)
        if (match := _CHAT_PATH.match(rest)) and method == "POST":
            return await self._chat(request, account, match["deployment"])
        if _JOBS_PATH.match(rest) and method == "GET":
            return JSONResponse(list_jobs(jobs, query))
        if (match := _JOB_PATH.match(rest)) and method == "GET":
            return JSONResponse(job_json(jobs, find_job(jobs, match["job"])))
        if (match := _CHECKPOINTS_PATH.match(rest)) and method == "GET":
            return JSONResponse(list_checkpoints(jobs, find_job(jobs, match["job"]), query))
        raise resource_not_found()

    # --- inference ------------------------------------------------------------------------------

    def _serving_deployment(self, account: AccountState, name: str) -> Deployment:
        now = self._runtime.state.settle()
        deployment = account.find(name)
        if deployment is None or deployment.final_state != "Succeeded":
            raise deployment_not_found()
        running = deployment.operation
        if running is not None and not running.is_done(now) and running.kind not in _SERVING_OPERATIONS:
            raise deployment_not_found()
        return deployment

    async def _chat(self, request: Request, account: AccountState, deployment_name: str) -> Response:
        deployment = self._serving_deployment(account, deployment_name)
        self._runtime.usage.record(account.config.key, deployment.name)  # what the metrics endpoint reports
        chat = parse_chat_request(await request.body())
        if blocks_prompt(chat):
            raise content_filtered()
        answer = answer_chat(chat)
        meta = CompletionMeta(f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), deployment.model.name)
        budget_key = f"{'/'.join(account.config.key)}/{deployment.name.lower()}"
        requests_left, tokens_left = self._budget.spend(budget_key, deployment.capacity, answer.total_tokens)
        headers = {
            "x-ratelimit-remaining-requests": str(requests_left),
            "x-ratelimit-remaining-tokens": str(tokens_left),
        }
        if not chat.stream:
            return JSONResponse(completion_json(meta, answer), headers=headers)
        chunks = list(stream_chunks(meta, answer, chat.include_usage))
        delay = self._runtime.config.stream_chunk_delay_ms / 1000
        return StreamingResponse(
            _paced_events(chunks, delay),
            media_type="text/event-stream",
            headers={**headers, "Cache-Control": "no-cache"},
        )


async def _paced_events(chunks: list[dict[str, Any]], delay: float) -> AsyncIterator[bytes]:
    """Server-sent events, written one at a time with `delay` seconds between them."""
    for index, chunk in enumerate(chunks):
        if index and delay:
            await asyncio.sleep(delay)
        yield sse_event(chunk)
    if delay:
        await asyncio.sleep(delay)
    yield DONE_EVENT
