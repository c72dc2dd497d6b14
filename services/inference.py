"""Key-less inference proxy: Azure OpenAI chat completions through the managed identity, async end to end.

The caller's body goes upstream as sent (checked to be one JSON object, size-capped) with the service's own
bearer token; nothing the caller sent as credentials (`api-key`, `Authorization`) is forwarded, since the
upstream request is built afresh. Status, error bodies and the headers clients rely on come back unchanged;
streams are relayed event by event as they arrive.

The transport is `services.upstream`: one pooled HTTP connection pool per process, and per (account,
api-version) a prebuilt target (base URL, api-version query, static headers), kept in a small
least-recently-used cache so callers naming many api-versions cannot grow it. The `openai` SDK is not used
here: it is what callers use.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .errors import (
    ConfigurationError,
    Forbidden,
    NotFound,
    RelayedError,
    ServiceError,
    UpstreamError,
    ValidationError,
)
from .identity import TokenProvider
from .results import ProxyResponse
from .settings import Account, Settings
from .stream_relay import StreamEnd, relay_events
from .upstream import MAX_CACHED_TARGETS, Answer, Body, SlicedBody, Target, Upstream, make_target
from .web import RawBody, parse_json_object, retry_after_seconds

__all__ = ["MAX_CACHED_CLIENTS", "Body", "CallRecord", "InferenceGateway", "SlicedBody"]

log = logging.getLogger("inference")

_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_PASSED_HEADERS = ("content-type", "retry-after", "retry-after-ms", "apim-request-id", "x-ms-region")
# Azure's own x-request-id comes back as x-ms-request-id: x-request-id is this service's id on every answer.
_RENAMED_HEADERS = {"x-request-id": "x-ms-request-id"}
MAX_CACHED_CLIENTS = MAX_CACHED_TARGETS
_PASSED_PREFIXES = ("x-ratelimit-", "openai-", "azureml-model-")
CHAT_EXAMPLE = '{"messages": [{"role": "user", "content": "Hello"}]}'


@dataclass
class CallRecord:
    """The one structured log line each call writes. Never prompts, completions or tokens."""

    account: str
    deployment: str
    operation: str
    caller: str | None = None
    stream: bool = False
    status: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    started: float = field(default_factory=time.perf_counter)
    request_id: str | None = None
    served_by: str | None = None  # alias/deployment that answered (a failover group's member)
    model: str | None = None
    region: str | None = None
    total_tokens: int | None = None
    # Called once when the call ends (the limits' settlement, the usage ledger, metrics); never raise.
    sinks: list[Callable[[CallRecord], None]] = field(default_factory=list)

    def write(self) -> None:
        record = {
            "event": "inference",
            "caller": self.caller,
            "account": self.account,
            "deployment": self.deployment,
            "operation": self.operation,
            "stream": self.stream,
            "status": self.status,
            "latencyMs": round((time.perf_counter() - self.started) * 1000, 1),
            "promptTokens": self.prompt_tokens,
            "completionTokens": self.completion_tokens,
        }
        if self.served_by:
            record["servedBy"] = self.served_by
        log.info(json.dumps(record))
        sinks, self.sinks = self.sinks, []
        for sink in sinks:
            sink(self)

    def take_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            self.prompt_tokens = usage.get("prompt_tokens")
            self.completion_tokens = usage.get("completion_tokens")
            self.total_tokens = usage.get("total_tokens")


class InferenceGateway:
    def __init__(
        self, settings: Settings, tokens: Callable[[Account], TokenProvider], *, upstream: Upstream | None = None
    ) -> None:
        """`tokens` gives an account's data-plane token provider (of the account's own tenant)."""
        self.settings = settings
        self._tokens = tokens
        self._token_of: dict[str, TokenProvider] = {}  # per configured account alias
        self._clients: OrderedDict[tuple[str, str], Target] = OrderedDict()
        tuning = settings.inference
        self.upstream = upstream or Upstream(pool_size=tuning.pool_size, timeout_seconds=tuning.timeout_seconds)
        self.shared: Any = None  # services.shared_gateway.SharedGateway: limits, ledger, metrics, failover

    # Chat completions

    async def chat_completions(
        self,
        alias: str | None,
        deployment: str,
        api_version: str | None,
        raw_body: RawBody,
        *,
        request_id: str,
        caller: str | None = None,
        principal: Any = None,
    ) -> ProxyResponse:
        """`principal` (services.auth.Caller) picks the caller's limit rule by id or app role."""
        group = self.settings.groups.get(deployment) if not alias else None
        account = None if group else self.allowed_account(alias, deployment)
        version = self._api_version(api_version)
        payload = parse_json_object(raw_body, example=CHAT_EXAMPLE, max_bytes=self.settings.inference.max_body_bytes)
        streaming = payload.get("stream") is True
        record = CallRecord(
            account.alias if account else "-",
            deployment,
            "chat.completions",
            caller=caller,
            stream=streaming,
            request_id=request_id,
        )
        hide_usage = False
        content = raw_body if isinstance(raw_body, bytes) else bytes(raw_body)  # forwarded as sent
        if streaming:
            options = payload.get("stream_options")
            if options is not None and not isinstance(options, dict):
                raise ValidationError(
                    'stream_options must be an object, e.g. {"include_usage": true}.',
                    code="InvalidField",
                    target="stream_options",
                )
            if not (isinstance(options, dict) and options.get("include_usage") is True):
                # Ask for the usage chunk (for the log), and keep it from the caller who did not ask for it.
                payload = {**payload, "stream_options": {**(options or {}), "include_usage": True}}
                content = json.dumps(payload).encode()
                hide_usage = True
        if group is not None and self.shared is None:  # a gateway made without its context: trips kept here
            from .failover import LocalBreaker
            from .shared_gateway import SharedGateway

            self.shared = SharedGateway(limiter=None, breaker=LocalBreaker())
        hold = await self.shared.admit(record, principal, account, payload) if self.shared else None
        if group is not None:
            answer = await self.shared.route(group, record, self._group_sender(version, content, request_id, record))
        else:
            assert account is not None
            record.served_by = f"{account.alias}/{deployment}"
            path = f"/deployments/{quote(deployment)}/chat/completions"
            answer = await self._send(account, version, "POST", path, content, request_id, record)
        extra = {**({"x-served-by": record.served_by or ""} if group else {}), **(hold.headers() if hold else {})}
        if isinstance(answer, ProxyResponse):
            answer.headers.update(extra)
            return answer
        headers = {**passed_headers(answer.headers), **extra}
        record.status, record.region = answer.status, answer.headers.get("x-ms-region")
        if not streaming:
            body = await answer.read()
            if b'"usage"' in body:
                parsed = _parsed(body)
                record.take_usage(parsed.get("usage"))
                record.model = parsed.get("model")
            record.write()
            return ProxyResponse(answer.status, headers, body=body)
        end = StreamEnd(answer, record)
        return ProxyResponse(answer.status, headers, stream=relay_events(answer, record, hide_usage, end), close=end)

    async def completion_json(
        self,
        account: Account,
        deployment: str,
        content: Body,
        *,
        request_id: str,
        operation: str,
        caller: str | None = None,
    ) -> tuple[dict[str, Any], CallRecord]:
        """A non-streamed chat completion the service itself makes (`content` is the JSON body, whole or as
        slices sent one after another): answers the parsed body; an upstream error is raised as RelayedError."""
        record = CallRecord(account.alias, deployment, operation, caller=caller, request_id=request_id)
        record.served_by = f"{account.alias}/{deployment}"
        if self.shared is not None:
            self.shared.observe(record)  # the ledger row and metrics (no per-caller limits on this path)
        path = f"/deployments/{quote(deployment)}/chat/completions"
        version = self.settings.azure_openai_api_version
        answer = _raised(await self._send(account, version, "POST", path, content, request_id, record))
        body = await answer.read()
        record.status = answer.status
        try:
            parsed = json.loads(body)
        except ValueError:
            raise UpstreamError("Azure OpenAI answered with a body that is not JSON.", code="BadGateway") from None
        record.take_usage(parsed.get("usage") if isinstance(parsed, dict) else None)
        record.write()
        return parsed, record

    async def get_json(self, account: Account, path: str, *, request_id: str, operation: str) -> dict[str, Any]:
        """A GET on the account's data plane (fine-tuning jobs): the parsed body; an upstream error is raised as
        RelayedError."""
        record = CallRecord(account.alias, "-", operation)
        version = self.settings.azure_openai_api_version
        answer = _raised(await self._send(account, version, "GET", path, None, request_id, record))
        body = await answer.read()
        record.status = answer.status
        record.write()
        parsed = json.loads(body) if body else {}
        return parsed if isinstance(parsed, dict) else {}

    def _group_sender(self, version: str, content: bytes, request_id: str, record: CallRecord) -> Any:
        """Sends a group call to one member: a single attempt (failover is the only retry layer)."""

        async def send(member: Any) -> Any:
            try:
                account = self.allowed_account(member.account, member.deployment)
            except ServiceError as error:
                raise ConfigurationError(
                    f"INFERENCE_GROUPS member {member.name} cannot be called: {error.message}",
                    target="INFERENCE_GROUPS",
                ) from None
            record.account, record.served_by = account.alias, member.name
            path = f"/deployments/{quote(member.deployment)}/chat/completions"
            return await self._send_once(account, version, "POST", path, content, request_id, reconnect=False)

        return send

    # Accounts and targets

    def allowed_account(self, alias: str | None, deployment: str) -> Account:
        account = self.settings.account(alias)
        allowed = account.inference_deployments
        if "*" not in allowed and deployment not in allowed:
            shown = ", ".join(allowed) if allowed else "none"
            raise Forbidden(
                f"Deployment '{deployment}' may not be called through this service on account '{account.alias}'. "
                f"Allowed: {shown}. An operator adds it to inferenceDeployments in AZURE_OPENAI_ACCOUNTS.",
                code="DeploymentNotAllowed",
                target="deployment",
            )
        return account

    def _api_version(self, given: str | None) -> str:
        if not given:
            # Azure OpenAI answers 404 to a data-plane call without api-version; so does this service, so that
            # code that works here works there.
            raise NotFound(
                "Resource not found: api-version is required on every Azure OpenAI call. Add "
                f"?api-version={self.settings.azure_openai_api_version} (the openai SDK's AzureOpenAI client "
                "adds it from its api_version argument).",
                code="ApiVersionRequired",
                target="api-version",
            )
        if not _API_VERSION.fullmatch(given):
            raise ValidationError(
                f"api-version '{given[:40]}' is not a version: use one like {self.settings.azure_openai_api_version}.",
                code="InvalidQueryParameter",
                target="api-version",
            )
        return given

    def client(self, account: Account, api_version: str) -> Target:
        """The prebuilt upstream target of (account, api-version), from a bounded least-recently-used cache."""
        key = (account.alias, api_version)
        target = self._clients.get(key)
        if target is not None:
            self._clients.move_to_end(key)
            return target
        target = make_target(account, api_version)
        self._clients[key] = target
        if len(self._clients) > MAX_CACHED_CLIENTS:
            # Targets hold no connections (the pool is shared), so evicting one closes nothing.
            self._clients.popitem(last=False)
        return target

    async def aclose(self) -> None:
        """Close the connection pool (every pooled upstream connection)."""
        self._clients.clear()
        await self.upstream.aclose()

    # Transport

    async def _send(
        self,
        account: Account,
        api_version: str,
        method: str,
        path: str,
        content: Body | None,
        request_id: str,
        record: CallRecord,
    ) -> Answer | ProxyResponse:
        """The upstream answer (body unread), or a ProxyResponse carrying an upstream error to relay."""
        for attempt in (1, 2):
            try:
                answer = await self._send_once(account, api_version, method, path, content, request_id)
            except Exception as error:
                record.status = getattr(error, "status", 500)
                record.write()
                raise
            if answer.status < 400:
                return answer
            if answer.status == 429 and attempt == 1:
                wait_ms = _retry_after_ms(answer.headers)
                if wait_ms is not None and wait_ms <= self.settings.inference.retry_max_wait_ms:
                    await answer.aclose()
                    await asyncio.sleep(wait_ms / 1000)
                    continue
            body = await answer.read()
            record.status = answer.status
            record.write()
            return ProxyResponse(answer.status, passed_headers(answer.headers), body=body)
        raise AssertionError("unreachable")

    async def _send_once(
        self,
        account: Account,
        api_version: str,
        method: str,
        path: str,
        content: Body | None,
        request_id: str,
        *,
        reconnect: bool = True,
    ) -> Answer:
        target = self.client(account, api_version)
        token = self._token_of.get(account.alias)
        if token is None:
            token = self._token_of.setdefault(account.alias, self._tokens(account))
        headers = [("authorization", "Bearer " + await token.aget()), ("x-ms-client-request-id", request_id)]
        if content is not None:
            headers.append(("content-type", "application/json"))
        return await self.upstream.send(target, method, path, headers, content, reconnect=reconnect)


def _parsed(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def passed_headers(headers: Mapping[str, str]) -> dict[str, str]:
    passed = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in _PASSED_HEADERS or lowered.startswith(_PASSED_PREFIXES):
            passed[lowered] = value
        elif lowered in _RENAMED_HEADERS:
            passed[_RENAMED_HEADERS[lowered]] = value
    return passed


def _raised(response: Any) -> Any:
    """The upstream response, or its error raised to be relayed as Azure sent it."""
    if isinstance(response, ProxyResponse):
        raise RelayedError(response.status, response.headers, response.body or b"")
    return response


def _retry_after_ms(headers: Mapping[str, str]) -> float | None:
    seconds = retry_after_seconds(headers)
    return None if seconds is None else seconds * 1000
