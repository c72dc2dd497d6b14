"""The ARM client's own azure-core pipeline policies, each doing one thing.

- `BoundedRetryPolicy`: transient statuses and connection errors, retried within a count and a time budget.
- `RequestConflictPolicy`: ARM's `409 RequestConflict` (another operation on the account), retried until a deadline
  when the caller asks for it, then a `ConflictError`.
- `SameOriginPolicy`: requests go to the configured ARM host only (a token must never leave for another host).
- `ArmTracingPolicy`: azure-core's network spans, switched on when OpenTelemetry has a tracer provider.
- `ArmCallLogPolicy`: one log line per HTTP attempt; no header or body is ever logged.
- `AuxiliaryTokenPolicy`: `x-ms-authorization-auxiliary` with tokens of other tenants, for calls that ask for it.

Time comes from an injectable clock; waits go through the transport's `sleep` unless a sleep is injected, so a
fake transport and a fake clock pin every schedule in tests without waiting.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, cast
from urllib.parse import urlsplit

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import (
    DistributedTracingPolicy,
    HTTPPolicy,
    RetryPolicy,
    SansIOHTTPPolicy,
)
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest, HttpResponse
from azure.core.settings import settings as azure_settings

from .errors import ConflictError, UpstreamError
from .tenants import AUXILIARY_HEADER, auxiliary_header
from .web import retry_after_seconds

log = logging.getLogger("services.arm")

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# Every call this client makes is idempotent (PUT/PATCH carry absolute values), so all of them may be retried.
RETRYABLE_METHODS = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})
CONFLICT_MIN_WAIT_SECONDS = 0.5

Clock = Callable[[], float]
Sleep = Callable[[float], None]
Request = PipelineRequest[HttpRequest]
Response = PipelineResponse[HttpRequest, HttpResponse]


def backoff_delay(attempt: int, base: float, cap: float, *, jitter: bool = True) -> float:
    """Seconds before retry number `attempt` (1-based): base, 2*base, 4*base ... capped, with jitter."""
    delay = min(base * 2.0 ** (attempt - 1), cap)
    # Jitter spreads the retries of many instances hitting the same throttled subscription.
    return delay * random.uniform(0.8, 1.0) if jitter else delay


def json_body(response: HttpResponse) -> Any:
    """The decoded JSON body of a response, or None when it is empty or not JSON."""
    raw = response.content
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def path_of(url: str) -> str:
    return urlsplit(url).path


def _sleeper(request: Request, sleep: Sleep | None) -> Sleep:
    if sleep is not None:
        return sleep
    transport = cast(HttpTransport[HttpRequest, HttpResponse], request.context.transport)
    return transport.sleep


class BoundedRetryPolicy(RetryPolicy[HttpRequest, HttpResponse]):
    """azure-core's `RetryPolicy`, bounded in time as well as in count.

    azure-core decides the rest: it counts the retries, waits what the server asks for (`retry-after-ms`,
    `x-ms-retry-after-ms`, `Retry-After`) and retries connection errors. Four small overrides make it this
    service's policy:
    - `is_retry`: the transient statuses only (408/429/5xx). A 4xx with `Retry-After` is not retried here:
      ARM's `409 RequestConflict` has its own policy and deadline;
    - the methods: PATCH too, since every write this client sends carries absolute values;
    - `increment`: no retry whose wait would end past `budget` seconds from the start of the call (azure-core's
      own `timeout` would sleep past it, then raise without the answer); the caller then gets ARM's own last
      answer, or the last connection error;
    - the backoff: from the first retry (azure-core retries once at once), doubled, capped, with jitter.
    """

    def __init__(
        self,
        *,
        total: int = 4,
        backoff: float = 0.8,
        backoff_max: float = 20.0,
        budget: float = 60.0,
        jitter: bool = True,
        clock: Clock = time.monotonic,
        sleep: Sleep | None = None,
    ) -> None:
        super().__init__(
            retry_total=total,
            retry_backoff_factor=backoff,
            retry_backoff_max=backoff_max,
            retry_on_status_codes=sorted(RETRYABLE_STATUSES),
        )
        self._method_whitelist = RETRYABLE_METHODS
        self.budget = budget
        self.jitter = jitter
        self.clock = clock
        self._sleep = sleep

    def delay(self, attempt: int, headers: Mapping[str, str] | None = None) -> float:
        """Seconds to wait before retry `attempt` (1-based): the server's delay if it gave one, else backoff."""
        server = retry_after_seconds(headers) if headers is not None else None
        if server is not None:
            return server
        return backoff_delay(attempt, self.backoff_factor, self.backoff_max, jitter=self.jitter)

    def configure_retries(self, options: dict[str, Any]) -> dict[str, Any]:
        settings = super().configure_retries(options)
        settings["started"] = self.clock()
        return settings

    def is_retry(self, settings: dict[str, Any], response: PipelineResponse[Any, Any]) -> bool:
        method = response.http_request.method.upper()
        status = response.http_response.status_code
        return bool(settings["total"]) and status in RETRYABLE_STATUSES and method in settings["methods"]

    def increment(self, settings: dict[str, Any], response: Any = None, error: Exception | None = None) -> bool:
        if not super().increment(settings, response=response, error=error):
            return False
        answered = response if isinstance(response, PipelineResponse) else None
        delay = self.delay(len(settings["history"]), answered.http_response.headers if answered else None)
        if self.clock() - settings["started"] + delay > self.budget:
            return False
        settings["delay"] = delay
        request = response.http_request if response is not None else None
        if request is not None:
            what = f"HTTP {answered.http_response.status_code}" if answered else type(error).__name__
            retry = len(settings["history"])
            log.info("ARM %s %s: %s; retry %d in %.2fs", request.method, path_of(request.url), what, retry, delay)
        return True

    def sleep(self, settings: dict[str, Any], transport: Any, response: Response | None = None) -> None:
        """The wait `increment` checked against the budget (so a jittered backoff is the same one)."""
        (self._sleep or transport.sleep)(settings["delay"])


class RequestConflictPolicy(HTTPPolicy[HttpRequest, HttpResponse]):
    """Waits out ARM's `409 RequestConflict` for calls sent with the option `retry_conflict=True`.

    ARM refuses a change while another one runs on the same account. The call is repeated with backoff (at
    least 0.5 s apart, the server's delay when it gives one) until `seconds` have passed; then the caller gets
    a `ConflictError` telling it when to try again and how to see which operation is still running.
    """

    def __init__(
        self,
        seconds: float,
        *,
        backoff: float = 0.8,
        backoff_max: float = 20.0,
        jitter: bool = True,
        clock: Clock = time.monotonic,
        sleep: Sleep | None = None,
    ) -> None:
        super().__init__()
        self.seconds = seconds
        self.backoff = backoff
        self.backoff_cap = backoff_max
        self.jitter = jitter
        self.clock = clock
        self._sleep = sleep

    def send(self, request: Request) -> Response:
        # Always removed: the transport must not see the option.
        if not request.context.options.pop("retry_conflict", False):
            return self.next.send(request)
        deadline = self.clock() + self.seconds
        attempt = 0
        while True:
            response = self.next.send(request)
            error = _request_conflict(response.http_response)
            if error is None:
                return response
            attempt += 1
            server = retry_after_seconds(response.http_response.headers)
            delay = (
                server
                if server is not None
                else backoff_delay(attempt, self.backoff, self.backoff_cap, jitter=self.jitter)
            )
            delay = max(delay, CONFLICT_MIN_WAIT_SECONDS)
            if self.clock() + delay > deadline:
                raise self._gave_up(error)
            log.info(
                "ARM %s %s: RequestConflict; retry in %.2fs",
                request.http_request.method,
                path_of(request.http_request.url),
                delay,
            )
            _sleeper(request, self._sleep)(delay)

    def _gave_up(self, error: Mapping[str, Any]) -> ConflictError:
        message = str(error.get("message") or "Another operation is running on the account.")
        return ConflictError(
            f"{message} The service retried for {self.seconds:g} s; wait for the other operation to finish "
            "(GET the deployments to see which one is not Succeeded) and try again.",
            headers={"Retry-After": str(max(int(self.seconds // 3), 5))},
        )


def _request_conflict(response: HttpResponse) -> Mapping[str, Any] | None:
    """ARM's error object when the response is a `409 RequestConflict`, else None."""
    if response.status_code != 409:
        return None
    body = json_body(response)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and str(error.get("code", "")).lower() == "requestconflict":
        return error
    return None


class SameOriginPolicy(SansIOHTTPPolicy[HttpRequest, HttpResponse]):
    """Refuses any request to a host other than the ARM endpoint, before a token is attached.

    ARM answers carry links (`nextLink`, `Location`, `Azure-AsyncOperation`); one naming another host is not
    followed, so the service's ARM token goes to ARM only.
    """

    def __init__(self, endpoint: str) -> None:
        self._origin = _origin(endpoint)

    def on_request(self, request: Request) -> None:
        url = request.http_request.url
        if _origin(url) != self._origin:
            raise UpstreamError(
                f"ARM returned a link to another host ({urlsplit(url).netloc}); the service does not follow it.",
                status=502,
            )


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


class ArmTracingPolicy(DistributedTracingPolicy[HttpRequest, HttpResponse]):
    """azure-core's network spans (one per attempt), sent to OpenTelemetry once the app has set a tracer provider.

    azure-core traces only when `AZURE_TRACING_ENABLED` (or its settings) says so. This policy also traces when
    the process has configured OpenTelemetry (a tracer provider other than the API's default no-op one) and
    `AZURE_TRACING_ENABLED` is not set; with no provider it adds nothing to a call.
    """

    def on_request(self, request: Request) -> None:
        if "tracing_options" not in request.context.options and _tracer_provider_set():
            request.context.options["tracing_options"] = {"enabled": True}
        super().on_request(request)


def _tracer_provider_set() -> bool:
    """Whether to switch tracing on for a call: OpenTelemetry is set up and azure-core was told nothing."""
    explicit = azure_settings.tracing_enabled.env_var  # AZURE_TRACING_ENABLED
    if azure_settings.tracing_enabled() or (explicit and explicit in os.environ):
        return False  # azure-core follows its own setting
    try:
        from opentelemetry import trace
    except ImportError:
        return False
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider)


class ArmCallLogPolicy(HTTPPolicy[HttpRequest, HttpResponse]):
    """One log line per HTTP attempt: method, path, status, duration, ARM's request and correlation ids.

    Sits next to the transport, so a retried call logs each attempt. Never logs a header value other than
    ARM's two ids, nor a query string or a body.
    """

    def send(self, request: Request) -> Response:
        method = request.http_request.method
        path = path_of(request.http_request.url)
        started = time.perf_counter()
        try:
            response = self.next.send(request)
        except Exception as error:
            log.info(
                "ARM %s %s -> %s after %.1f ms",
                method,
                path,
                type(error).__name__,
                (time.perf_counter() - started) * 1000,
            )
            raise
        headers = response.http_response.headers
        log.info(
            "ARM %s %s -> %d in %.1f ms (x-ms-request-id=%s, correlation=%s)",
            method,
            path,
            response.http_response.status_code,
            (time.perf_counter() - started) * 1000,
            headers.get("x-ms-request-id"),
            headers.get("x-ms-correlation-request-id"),
        )
        return response


AUXILIARY_OPTION = "auxiliary_tokens"
AuxiliaryTokens = tuple[tuple[str, Callable[[], str]], ...]  # (tenant id, token source) per other tenant


class AuxiliaryTokenPolicy(SansIOHTTPPolicy[HttpRequest, HttpResponse]):
    """Sends tokens of other tenants in `x-ms-authorization-auxiliary` for a call sent with the option
    `auxiliary_tokens=((tenant, source), ...)` (ARM's multi-tenant authorization, e.g. a linked source account).

    Placed after the same-origin check and inside the retries: each attempt gets a current token, and the
    header reaches the ARM host only. The option is taken off before the transport sees it.
    """

    def on_request(self, request: Request) -> None:
        if AUXILIARY_OPTION in request.context.options:
            request.context[AUXILIARY_OPTION] = request.context.options.pop(AUXILIARY_OPTION)
        sources: AuxiliaryTokens = request.context.get(AUXILIARY_OPTION) or ()
        if sources:
            request.http_request.headers[AUXILIARY_HEADER] = auxiliary_header([source() for _, source in sources])
