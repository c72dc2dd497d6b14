"""ARM client: one azure-core pipeline over a pooled `requests` session, used by every ARM call of the service.

The pipeline, outermost first: the caller's request id (`x-ms-client-request-id`), `Accept: application/json`,
the User-Agent, the same-origin check (before any token is attached), the `409 RequestConflict` wait (when the
call asks for it), bounded retries of transient failures, the bearer token of the credential (cached and renewed
by azure-core), a network span, one log line per attempt, then the transport.

All calls are blocking; callers on an event loop run them in a worker thread. Long-running operations are
followed by `services.lro.LongRunningOperation`.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from azure.core.exceptions import AzureError, ClientAuthenticationError
from azure.core.pipeline import Pipeline
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    HeadersPolicy,
    RequestIdPolicy,
    UserAgentPolicy,
)
from azure.core.pipeline.transport import HttpTransport, RequestsTransport
from azure.core.rest import HttpRequest, HttpResponse
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from .arm_policies import (
    AUXILIARY_OPTION,
    ArmCallLogPolicy,
    ArmTracingPolicy,
    AuxiliaryTokenPolicy,
    AuxiliaryTokens,
    BoundedRetryPolicy,
    Clock,
    RequestConflictPolicy,
    SameOriginPolicy,
    Sleep,
    json_body,
)
from .errors import ConfigurationError, IdentityUnavailable, UpstreamError, UpstreamUnavailable
from .identity import identity_unavailable
from .settings import Account, ArmTuning
from .tenants import arm_refused

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

MAX_PAGES = 1000
USER_AGENT = "aoai-deployments-functions"
_LOOPBACK_NAMES = frozenset({"localhost"})
ArmFor = Callable[[Account], "ArmClient"]  # the ARM client whose token is of the account's tenant


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


class ArmClient:
    """ARM calls with the service's identity: bounded retries, conflict waits, paging, same-origin links.

    `transport` replaces the pooled `RequestsTransport` (tests pass a scripted one); `clock` and `sleep`
    replace `time.monotonic` and the transport's `sleep` for every wait the client makes.
    """

    def __init__(
        self,
        endpoint: str,
        api_version: str,
        credential: TokenCredential,
        scope: str,
        *,
        tuning: ArmTuning,
        transport: HttpTransport[HttpRequest, HttpResponse] | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        tenant_id: str | None = None,
    ) -> None:
        self.endpoint = endpoint.rstrip("/")
        # None: the Function App's own tenant; else the other tenant whose token this client sends.
        self.tenant_id = tenant_id
        self.api_version = api_version
        self.scope = scope
        self.tuning = tuning
        # Tokens travel over TLS, except to a simulator on this machine.
        self._run_options: dict[str, Any] = {} if _requires_https(self.endpoint) else {"enforce_https": False}
        self.transport = transport or _pooled_transport(tuning)
        self._clock = clock or time.monotonic
        self._sleep = sleep
        retry = BoundedRetryPolicy(
            total=tuning.retry_total,
            backoff=tuning.retry_backoff_seconds,
            backoff_max=tuning.retry_backoff_max_seconds,
            budget=tuning.retry_budget_seconds,
            clock=self._clock,
            sleep=sleep,
        )
        # azure-core types its header policies for both request kinds, which no single Pipeline type matches.
        policies: list[Any] = [
            RequestIdPolicy(),
            HeadersPolicy({"Accept": "application/json"}),
            UserAgentPolicy(user_agent=USER_AGENT),
            SameOriginPolicy(self.endpoint),
            RequestConflictPolicy(
                tuning.conflict_retry_seconds,
                backoff=tuning.retry_backoff_seconds,
                backoff_max=tuning.retry_backoff_max_seconds,
                clock=self._clock,
                sleep=sleep,
            ),
            retry,
            BearerTokenCredentialPolicy(credential, scope),
            AuxiliaryTokenPolicy(),
            ArmTracingPolicy(),
            ArmCallLogPolicy(),
        ]
        self._pipeline: Pipeline[HttpRequest, HttpResponse] = Pipeline(self.transport, policies)

    def clock(self) -> float:
        """Now, in seconds, on the clock every deadline of this client is measured on."""
        return self._clock()

    def sleep(self, seconds: float) -> None:
        (self._sleep or self.transport.sleep)(seconds)

    def close(self) -> None:
        self.transport.close()

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
        auxiliary: AuxiliaryTokens = (),
    ) -> ArmResponse:
        """One ARM call with retries; answers any final status (callers decide what is an error).

        Raises `UpstreamUnavailable` when ARM cannot be reached after the retries, `IdentityUnavailable` when no
        token can be had or ARM refuses the token (401), `ConflictError` when a `retry_conflict` call kept
        meeting another operation, `UpstreamError` (502) for a URL on another host than the ARM endpoint.
        `auxiliary` adds tokens of other tenants (`x-ms-authorization-auxiliary`); ARM's refusal of a token of
        another tenant is `CrossTenantAuthorizationFailed` (403).
        """
        options: dict[str, Any] = dict(self._run_options)
        if request_id:
            options["request_id"] = request_id
        if auxiliary:
            options[AUXILIARY_OPTION] = auxiliary
        try:
            result = self._pipeline.run(HttpRequest(method, url, json=json), retry_conflict=retry_conflict, **options)
        except ClientAuthenticationError as error:
            raise identity_unavailable(self.scope, error) from None
        except AzureError as error:
            reason = type(error.inner_exception or error).__name__
            raise UpstreamUnavailable(
                f"ARM could not be reached at {self.endpoint} ({reason}), retries included. Check ARM_ENDPOINT "
                "and the network, then try again.",
                headers={"Retry-After": "10"},
            ) from None
        raw = result.http_response
        response = ArmResponse(raw.status_code, CaseInsensitiveDict(dict(raw.headers)), json_body(raw), url)
        if response.status == 401:
            error_body = response.error()
            others = [tenant for tenant, _ in auxiliary] + ([self.tenant_id] if self.tenant_id else [])
            if others:
                raise arm_refused(others, str(error_body.get("code")))
            raise IdentityUnavailable(
                f"ARM rejected the service's token ({error_body.get('code')}: {error_body.get('message')}). "
                "Check that ARM_ENDPOINT matches the cloud the identity belongs to."
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


def _pooled_transport(tuning: ArmTuning) -> RequestsTransport:
    session = requests.Session()
    # Retries are the pipeline's; urllib3's own would multiply them.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=tuning.pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return RequestsTransport(
        session=session,
        connection_timeout=tuning.connect_timeout_seconds,
        read_timeout=tuning.timeout_seconds,
    )


def _requires_https(endpoint: str) -> bool:
    """Bearer tokens need TLS; plain http is accepted only for a loopback host (the local simulator)."""
    parts = urlsplit(endpoint)
    if parts.scheme.lower() == "https":
        return True
    host = (parts.hostname or "").lower()
    try:
        loopback = host in _LOOPBACK_NAMES or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigurationError(
            f"ARM_ENDPOINT must be an https URL (plain http only for a simulator on this machine); got "
            f"'{parts.scheme}://{parts.netloc}'.",
            target="ARM_ENDPOINT",
        )
    return False
