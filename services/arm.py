"""ARM transport: one pooled `requests.Session`, bearer auth, bounded retries, 409 conflict retry, LRO polling.

Shaped like azure-core's pipeline, each concern small and separate: `RetryPolicy` decides whether and when
to retry, `ArmClient.send` applies auth, timeouts and retries to one call, `LongRunningOperation` follows
`Azure-AsyncOperation` / `Location` / the resource itself until a terminal state or a deadline.

All calls are blocking; callers on an event loop run them in a worker thread.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from .errors import ConflictError, IdentityUnavailable, UpstreamError, UpstreamUnavailable
from .settings import ArmTuning
from .web import retry_after_seconds

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
TERMINAL_STATES = frozenset({"succeeded", "failed", "canceled"})
MAX_PAGES = 1000


@dataclass
class ArmResponse:
    status: int
    headers: CaseInsensitiveDict[str]
    body: Any
    url: str

    @property
    def correlation_id(self) -> str | None:
        return self.headers.get("x-ms-correlation-request-id")

    def error(self) -> dict[str, Any]:
        """The ARM `error` object of this response (or a synthetic one for a non-JSON body)."""
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            return dict(self.body["error"])
        return {"code": "UpstreamError", "message": f"ARM answered HTTP {self.status} with no error details."}


@dataclass
class RetryPolicy:
    """When to retry an ARM call and how long to wait: exponential backoff, server delays honoured.

    Every ARM call this service makes is idempotent (PUT/PATCH with absolute values, GET, DELETE), so the
    transient statuses are retried for all methods. Bounded by a count and by a total time budget.
    """

    total: int = 4
    backoff: float = 0.8
    backoff_max: float = 20.0
    budget: float = 60.0
    jitter: bool = True
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def is_retryable(self, status: int) -> bool:
        return status in RETRYABLE_STATUSES

    def delay(self, attempt: int, headers: Mapping[str, str] | None = None) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        server = retry_after_seconds(headers) if headers is not None else None
        if server is not None:
            return server
        base = min(self.backoff * 2.0 ** (attempt - 1), self.backoff_max)
        # Jitter spreads the retries of many instances hitting the same throttled subscription.
        return base * random.uniform(0.8, 1.0) if self.jitter else base

    def allows(self, attempt: int, started: float, delay: float) -> bool:
        """Whether retry `attempt` may happen, `delay` seconds from now, within count and time budget."""
        return attempt <= self.total and (self.clock() - started) + delay <= self.budget


class ArmClient:
    """A small ARM client over one pooled session; the token comes from a scope-bound provider."""

    def __init__(
        self,
        endpoint: str,
        api_version: str,
        token_provider: Callable[[], str],
        *,
        tuning: ArmTuning | None = None,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.api_version = api_version
        self._token = token_provider
        self.tuning = tuning or ArmTuning()
        self.retry = retry or RetryPolicy(
            total=self.tuning.retry_total,
            backoff=self.tuning.retry_backoff_seconds,
            backoff_max=self.tuning.retry_backoff_max_seconds,
            budget=self.tuning.retry_budget_seconds,
        )
        self.session = session or _pooled_session(self.tuning.pool_size)
        self._origin = urlsplit(self.endpoint)[:2]

    def url(self, path: str) -> str:
        return f"{self.endpoint}{path}?{urlencode({'api-version': self.api_version})}"

    def send(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        request_id: str | None = None,
        retry_conflict: bool = False,
    ) -> ArmResponse:
        """One ARM call with retries; answers any final status (callers decide what is an error)."""
        self._check_origin(url)
        started = self.retry.clock()
        conflict_deadline = started + self.tuning.conflict_retry_seconds
        attempt = 0
        conflict_attempt = 0
        while True:
            try:
                response = self._send_once(method, url, json, request_id)
            except (requests.ConnectionError, requests.Timeout) as error:
                attempt += 1
                delay = self.retry.delay(attempt)
                if not self.retry.allows(attempt, started, delay):
                    raise UpstreamUnavailable(
                        f"ARM could not be reached at {self.endpoint} ({type(error).__name__}) after "
                        f"{attempt} attempt(s). Check ARM_ENDPOINT and the network, then try again.",
                        headers={"Retry-After": "10"},
                    ) from None
                log.info("ARM %s %s: %s; retry %d in %.2fs", method, _path(url), type(error).__name__, attempt, delay)
                self.retry.sleep(delay)
                continue
            if self.retry.is_retryable(response.status):
                attempt += 1
                delay = self.retry.delay(attempt, response.headers)
                if self.retry.allows(attempt, started, delay):
                    log.info(
                        "ARM %s %s: HTTP %d; retry %d in %.2fs", method, _path(url), response.status, attempt, delay
                    )
                    self.retry.sleep(delay)
                    continue
                return response
            if retry_conflict and _is_request_conflict(response):
                conflict_attempt += 1
                delay = self.retry.delay(conflict_attempt, response.headers)
                delay = max(delay, 0.5)
                if self.retry.clock() + delay <= conflict_deadline:
                    log.info("ARM %s %s: RequestConflict; retry in %.2fs", method, _path(url), delay)
                    self.retry.sleep(delay)
                    continue
                arm_error = response.error()
                raise ConflictError(
                    f"{arm_error.get('message', 'Another operation is running on the account.')} The service retried "
                    f"for {self.tuning.conflict_retry_seconds:g} s; wait for the other operation to finish "
                    "(GET the deployments to see which one is not Succeeded) and try again.",
                    headers={"Retry-After": str(max(int(self.tuning.conflict_retry_seconds // 3), 5))},
                )
            return response

    def _send_once(self, method: str, url: str, body: Any, request_id: str | None) -> ArmResponse:
        headers = {"Authorization": f"Bearer {self._token()}", "Accept": "application/json"}
        if request_id:
            headers["x-ms-client-request-id"] = request_id
        started = time.perf_counter()
        raw = self.session.request(
            method,
            url,
            json=body,
            headers=headers,
            timeout=(self.tuning.connect_timeout_seconds, self.tuning.timeout_seconds),
            allow_redirects=False,
        )
        try:
            payload: Any = raw.json() if raw.content else None
        except ValueError:
            payload = None
        response = ArmResponse(raw.status_code, raw.headers, payload, url)
        log.info(
            "ARM %s %s -> %d in %.1f ms (x-ms-request-id=%s, correlation=%s)",
            method,
            _path(url),
            raw.status_code,
            (time.perf_counter() - started) * 1000,
            raw.headers.get("x-ms-request-id"),
            response.correlation_id,
        )
        if raw.status_code == 401:
            error = response.error()
            raise IdentityUnavailable(
                f"ARM rejected the service's token ({error.get('code')}: {error.get('message')}). Check that "
                "ARM_ENDPOINT matches the cloud the identity belongs to."
            )
        return response

    def pages(self, url: str, *, request_id: str | None = None) -> Iterator[ArmResponse]:
        """Every page of a list, following `nextLink` until ARM stops giving one."""
        next_url: str | None = url
        for _ in range(MAX_PAGES):
            if not next_url:
                return
            page = self.send("GET", self.with_api_version(next_url), request_id=request_id)
            yield page
            next_url = page.body.get("nextLink") if page.status == 200 and isinstance(page.body, dict) else None
        raise UpstreamError(f"ARM kept returning nextLink after {MAX_PAGES} pages; the listing was stopped.")

    def with_api_version(self, url: str) -> str:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if "api-version" in query:
            return url
        query["api-version"] = self.api_version
        return urlunsplit(parts._replace(query=urlencode(query)))

    def _check_origin(self, url: str) -> None:
        # Tokens for ARM go to ARM only, even when a response names another host in a link.
        if urlsplit(url)[:2] != self._origin:
            raise UpstreamError(
                f"ARM returned a link to another host ({urlsplit(url).netloc}); the service does not follow it.",
                status=502,
            )


def _pooled_session(pool_size: int) -> requests.Session:
    session = requests.Session()
    # Retries are ours (RetryPolicy); urllib3's own would double them.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _is_request_conflict(response: ArmResponse) -> bool:
    return response.status == 409 and str(response.error().get("code", "")).lower() == "requestconflict"


def _path(url: str) -> str:
    return urlsplit(url).path


@dataclass
class PollOutcome:
    """Where an operation stands: a terminal state, or still running when the deadline came."""

    state: str
    resource: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    retry_after: float | None = None
    gone: bool = False

    @property
    def terminal(self) -> bool:
        return self.state.lower() in TERMINAL_STATES


@dataclass
class LongRunningOperation:
    """An ARM mutation that answered before finishing; polled as azure-mgmt-core's ARMPolling does.

    Status link priority: `Azure-AsyncOperation`, then `Location`, then the resource itself.
    """

    client: ArmClient
    method: str
    resource_url: str
    initial: ArmResponse
    request_id: str | None = None
    polls: int = field(default=0, init=False)

    def poll_until(self, deadline: float) -> PollOutcome:
        """Poll until a terminal state or `deadline` (on the retry policy's clock)."""
        clock = self.client.retry.clock
        outcome = self._initial_outcome()
        while not outcome.terminal:
            interval = outcome.retry_after
            if interval is None:
                # ARM's operation answers often carry no Retry-After. A caller is waiting on this request, so
                # poll soon and back off (1, 2, 4 ... s) up to the configured interval.
                interval = min(2.0**self.polls, self.client.tuning.poll_interval_seconds)
            remaining = deadline - clock()
            if remaining <= 0:
                break
            self.client.retry.sleep(min(interval, remaining))
            outcome = self._poll_once()
        if outcome.terminal and not outcome.gone and self.method in ("PUT", "PATCH"):
            final = self.client.send("GET", self.resource_url, request_id=self.request_id)
            if final.status == 200 and isinstance(final.body, dict):
                outcome.resource = final.body
        return outcome

    def _initial_outcome(self) -> PollOutcome:
        response = self.initial
        state = "InProgress"
        if self.method == "DELETE" and response.status in (200, 204):
            state = "Succeeded"
        elif isinstance(response.body, dict):
            state = _provisioning_state(response.body) or ("Succeeded" if response.status == 200 else state)
        if self.method == "DELETE" and state.lower() == "succeeded":
            return PollOutcome("Succeeded", gone=True)
        resource = response.body if isinstance(response.body, dict) and "properties" in response.body else None
        return PollOutcome(state, resource=resource, retry_after=retry_after_seconds(response.headers))

    def _poll_once(self) -> PollOutcome:
        self.polls += 1
        headers = self.initial.headers
        if headers.get("Azure-AsyncOperation"):
            return self._poll_async_operation(headers["Azure-AsyncOperation"])
        if headers.get("Location"):
            return self._poll_location(headers["Location"])
        return self._poll_resource()

    def _poll_async_operation(self, url: str) -> PollOutcome:
        response = self._get(url)
        if response.status >= 400:
            return PollOutcome("Failed", error=response.error())
        body = response.body if isinstance(response.body, dict) else {}
        status = str(body.get("status", "InProgress"))
        error = body.get("error") if isinstance(body.get("error"), dict) else None
        outcome = PollOutcome(status, error=error, retry_after=retry_after_seconds(response.headers))
        if outcome.terminal and self.method == "DELETE":
            outcome.gone = status.lower() == "succeeded"
        return outcome

    def _poll_location(self, url: str) -> PollOutcome:
        response = self._get(url)
        if response.status == 202:
            return PollOutcome("InProgress", retry_after=retry_after_seconds(response.headers))
        if response.status >= 400:
            return PollOutcome("Failed", error=response.error())
        resource = response.body if isinstance(response.body, dict) and "properties" in response.body else None
        return PollOutcome("Succeeded", resource=resource, gone=self.method == "DELETE")

    def _poll_resource(self) -> PollOutcome:
        response = self._get(self.resource_url)
        if response.status == 404 and self.method == "DELETE":
            return PollOutcome("Succeeded", gone=True)
        if response.status >= 400:
            return PollOutcome("Failed", error=response.error())
        body = response.body if isinstance(response.body, dict) else {}
        return PollOutcome(
            _provisioning_state(body) or "Succeeded",
            resource=body,
            retry_after=retry_after_seconds(response.headers),
        )

    def _get(self, url: str) -> ArmResponse:
        return self.client.send("GET", self.client.with_api_version(url), request_id=self.request_id)


def _provisioning_state(resource: Mapping[str, Any]) -> str | None:
    properties = resource.get("properties")
    if isinstance(properties, dict) and isinstance(properties.get("provisioningState"), str):
        return str(properties["provisioningState"])
    return None
