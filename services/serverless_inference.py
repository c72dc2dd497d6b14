"""Chat with Foundry serverless endpoints through the gateway: the endpoint's key is the service's, never the caller's.

`POST /serverless-endpoints/{name}/chat/completions` goes to the endpoint's `inferenceEndpoint.uri` +
`/chat/completions` (the Azure AI model inference API; `api-version` as the caller gave it, else
`2024-05-01-preview`, what azure-ai-inference sends), with `Authorization: Bearer <key>` as azure-ai-inference
sends it for these endpoints. Nothing the caller sent as credentials is forwarded. The body goes upstream as sent;
status, error bodies and the headers clients rely on come back as the endpoint sent them, streams event by event,
over the inference gateway's one connection pool (`services.upstream`). A 401 from the endpoint (its keys were
regenerated) fetches the key once more and retries once. Where the endpoint lives and whether it is Online is
read from ARM, and kept for a minute.
"""

from __future__ import annotations

import json
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from .errors import EndpointNotAllowed, EndpointNotReady, ServiceError, ValidationError
from .inference import CallRecord, passed_headers
from .projects import Project
from .results import ProxyResponse
from .serverless import ServerlessService, endpoint_not_found
from .serverless_keys import EndpointKeys
from .serverless_requests import check_endpoint_name
from .settings import Settings
from .stream_relay import StreamEnd, relay_events
from .upstream import Answer, Target, Upstream
from .web import RawBody, parse_json_object

DEFAULT_API_VERSION = "2024-05-01-preview"  # the Azure AI model inference API version azure-ai-inference sends
TARGET_SECONDS = 60.0  # how long an endpoint's URI and state are trusted before ARM is asked again
MAX_TARGETS = 256
_API_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
_USER_AGENT = "aoai-gateway"
CHAT_EXAMPLE = '{"messages": [{"role": "user", "content": "Hello"}]}'
RunBlocking = Callable[..., Awaitable[Any]]


@dataclass
class _Endpoint:
    uri: str
    until: float
    targets: dict[str, Target] = field(default_factory=dict)  # per api-version, prebuilt once

    def target(self, api_version: str) -> Target:
        target = self.targets.get(api_version)
        if target is None:
            target = self.targets.setdefault(api_version, _target(self.uri, api_version))
            if len(self.targets) > 4:
                self.targets.pop(next(iter(self.targets)))
        return target


class ServerlessGateway:
    def __init__(
        self, settings: Settings, service: ServerlessService, upstream: Upstream, run_blocking: RunBlocking
    ) -> None:
        self.settings = settings
        self.service = service
        self.upstream = upstream
        self._run_blocking = run_blocking
        self._endpoints: OrderedDict[tuple[str, str], _Endpoint] = OrderedDict()
        self.keys = EndpointKeys(self._list_keys)

    def forget_keys(self) -> None:
        self.keys.forget()

    async def chat_completions(
        self,
        alias: str | None,
        name: str,
        api_version: str | None,
        raw_body: RawBody,
        *,
        request_id: str,
        caller: str | None = None,
    ) -> ProxyResponse:
        project = self.settings.project(alias)
        check_endpoint_name(name)
        if not project.may_call(name):
            shown = ", ".join(project.inference_endpoints) or "none"
            raise EndpointNotAllowed(
                f"Serverless endpoint '{name}' may not be called through this service in project '{project.alias}'. "
                f"Allowed: {shown}. An operator adds it to inferenceEndpoints in FOUNDRY_PROJECTS.",
                target="name",
            )
        version = api_version or DEFAULT_API_VERSION
        if not _API_VERSION.fullmatch(version):
            raise ValidationError(
                f"api-version '{version[:40]}' is not a version: use one like {DEFAULT_API_VERSION}.",
                code="InvalidQueryParameter",
                target="api-version",
            )
        payload = parse_json_object(raw_body, example=CHAT_EXAMPLE, max_bytes=self.settings.inference.max_body_bytes)
        streaming = payload.get("stream") is True
        record = CallRecord(project.alias, name, "serverless.chat.completions", caller=caller, stream=streaming)
        content = raw_body if isinstance(raw_body, bytes) else bytes(raw_body)
        endpoint = await self._endpoint(project, name, request_id)
        target = endpoint.target(version)
        key = await self.keys.get(project.alias, name, request_id)
        answer = await self._send(target, key, content, request_id, record)
        if answer.status == 401:
            await answer.aclose()
            key = await self.keys.refresh(project.alias, name, key, request_id)
            answer = await self._send(target, key, content, request_id, record)
        headers = passed_headers(answer.headers)
        record.status = answer.status
        if answer.status >= 400 or not streaming:
            if answer.status >= 400 and answer.status != 429:
                self._endpoints.pop((project.alias, name), None)  # asked again next time: it may have changed
            body = await answer.read()
            if answer.status < 400:
                record.take_usage(_usage_of(body))
            record.write()
            return ProxyResponse(answer.status, headers, body=body)
        end = StreamEnd(answer, record)
        return ProxyResponse(answer.status, headers, stream=relay_events(answer, record, False, end), close=end)

    async def _send(self, target: Target, key: str, content: bytes, request_id: str, record: CallRecord) -> Answer:
        headers = [
            ("authorization", "Bearer " + key),
            ("x-ms-client-request-id", request_id),
            ("content-type", "application/json"),
        ]
        try:
            return await self.upstream.send(target, "POST", "/chat/completions", headers, content)
        except ServiceError as error:
            record.status = error.status
            record.write()
            raise

    async def _endpoint(self, project: Project, name: str, request_id: str) -> _Endpoint:
        """Where the endpoint answers; EndpointNotFound, or EndpointNotReady unless it is Online."""
        where = (project.alias, name)
        known = self._endpoints.get(where)
        if known is not None and known.until > time.monotonic():
            return known
        resource = await self._run_blocking(self.service.current, project, name, request_id)
        if resource is None:
            raise endpoint_not_found(project, name)
        properties = resource.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        state = str(properties.get("endpointState") or "in an unknown state")
        inference = properties.get("inferenceEndpoint")
        uri = inference.get("uri") if isinstance(inference, dict) else None
        if state.lower() != "online" or not isinstance(uri, str) or not uri:
            raise EndpointNotReady(
                f"Serverless endpoint '{name}' in project '{project.alias}' is {state} (provisioning "
                f"{properties.get('provisioningState')}), not Online. Wait for the PUT to finish (GET "
                "/api/serverless-endpoints/{name}), or PUT it again if it failed or was suspended.",
                target="name",
                headers={"Retry-After": "10"},
            )
        endpoint = _Endpoint(uri, time.monotonic() + TARGET_SECONDS)
        self._endpoints[where] = endpoint
        if len(self._endpoints) > MAX_TARGETS:
            self._endpoints.popitem(last=False)
        return endpoint

    async def _list_keys(self, alias: str, name: str, request_id: str | None) -> str:
        project = self.settings.project(alias)
        key: str = await self._run_blocking(self.service.primary_key, project, name, request_id)
        return key


def _target(uri: str, api_version: str) -> Target:
    base = uri.rstrip("/")
    host = urlsplit(base).netloc
    headers = (("host", host), ("accept", "application/json"), ("user-agent", _USER_AGENT))
    return Target(base, "api-version=" + quote(api_version, safe=""), headers)


def _usage_of(body: bytes) -> Any:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed.get("usage") if isinstance(parsed, dict) else None
