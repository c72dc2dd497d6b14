"""The HTTP transport to Azure OpenAI's data plane: one pooled connection pool per process, requests prebuilt.

Each (account, api-version) gets a `Target` once: its base URL, its `api-version` query and its static
headers; a call then only adds the path, the bearer token and the request id. Bodies go out as bytes (or as
slices, for large images), answers come back as bytes, unparsed. The pool is httpx2's transport (httpcore2
underneath), used without a client object: no cookie jar, redirects, auth flow or per-request logging.

Failures are typed here, once: an error before any answer byte is retried on a fresh connection (a pooled
one the server closed just as it was reused is the usual cause); a second one is 503 UpstreamUnavailable;
no answer in time is 504. Saturation is explicit: at most `pool_size` calls hold a connection, at most as
many again wait for one (for a bounded time), and a call beyond that is refused at once with 429 and
Retry-After instead of queueing without end.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from .errors import ConfigurationError, GatewayTimeout, Throttled, UpstreamUnavailable
from .settings import Account

if TYPE_CHECKING:
    import httpx2

MAX_CACHED_TARGETS = 16
KEEPALIVE_SECONDS = 60.0  # idle pooled connections live this long (Azure drops idle ones after ~4 minutes)
CONNECT_SECONDS = 5.0
POOL_WAIT_SECONDS = 10.0  # a queued call waits at most this long for a pooled connection
BUSY_RETRY_AFTER = "1"
_USER_AGENT = "aoai-gateway"


@dataclass(frozen=True)
class SlicedBody:
    """A request body sent as slices, never joined: `slices()` makes a fresh iterator for each attempt."""

    length: int
    slices: Callable[[], Iterator[bytes]]


Body = bytes | SlicedBody


@dataclass
class Target:
    """One account's data plane at one api-version: everything a request needs that does not change."""

    base: str  # https://<account>.openai.azure.com/openai
    query: str  # api-version=...
    headers: tuple[tuple[str, str], ...]
    urls: OrderedDict[str, Any] = field(default_factory=OrderedDict)

    def url(self, path: str) -> Any:
        """The parsed URL of `path` (kept for the few paths each target serves, e.g. one per deployment)."""
        url = self.urls.get(path)
        if url is None:
            import httpx2

            url = httpx2.URL(self.base + path + ("&" if "?" in path else "?") + self.query)
            self.urls[path] = url
            if len(self.urls) > MAX_CACHED_TARGETS * 4:
                self.urls.popitem(last=False)
        return url


def make_target(account: Account, api_version: str) -> Target:
    if not account.endpoint:
        raise ConfigurationError(
            f"Account '{account.alias}' has no endpoint in AZURE_OPENAI_ACCOUNTS: add its data-plane URL, "
            f"e.g. https://{account.account_name}.openai.azure.com/.",
            target="AZURE_OPENAI_ACCOUNTS",
        )
    base = account.endpoint.rstrip("/") + "/openai"
    host = urlsplit(base).netloc
    headers = (("host", host), ("accept", "application/json"), ("user-agent", _USER_AGENT))
    return Target(base, "api-version=" + quote(api_version, safe=""), headers)


class Answer:
    """An upstream answer with its body unread. `aclose()` (always called) returns the connection to the
    pool and frees the caller's place in the pool."""

    def __init__(self, response: httpx2.Response, release: Callable[[], None]) -> None:
        self.status: int = response.status_code
        self.headers: Any = response.headers
        self._response = response
        self._release: Callable[[], None] | None = release

    async def read(self) -> bytes:
        try:
            return await self._response.aread()
        finally:
            await self.aclose()

    def chunks(self) -> AsyncIterator[bytes]:
        return self._response.aiter_bytes()

    async def aclose(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            try:
                await self._response.aclose()
            finally:
                release()


class Upstream:
    """The process's pool of connections to Azure OpenAI, and the limits on who may use it."""

    def __init__(
        self,
        *,
        pool_size: int,
        timeout_seconds: float,
        transports: Callable[[int], tuple[Any, Any]] | None = None,
    ) -> None:
        self.pool_size = pool_size
        self.timeout_seconds = timeout_seconds
        self._make_transports = transports or _httpx2_transports
        self._pooled: Any = None
        self._fresh: Any = None
        self._active = 0  # calls holding or waiting for a connection
        self._timeouts = {
            "connect": CONNECT_SECONDS,
            "read": timeout_seconds,
            "write": timeout_seconds,
            "pool": min(POOL_WAIT_SECONDS, timeout_seconds),
        }

    @property
    def active(self) -> int:
        return self._active

    async def send(
        self,
        target: Target,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: Body | None,
        *,
        reconnect: bool = True,
    ) -> Answer:
        """Send once (and, with `reconnect`, once more on a fresh connection after an error before any answer
        byte; a failover group's call does not, its next member is the retry)."""
        if self._active >= 2 * self.pool_size:
            raise Throttled(
                f"The service already has {self._active} calls to Azure OpenAI in flight or queued (limit "
                f"{2 * self.pool_size}); retry after {BUSY_RETRY_AFTER} s.",
                headers={"Retry-After": BUSY_RETRY_AFTER},
            )
        if self._pooled is None:
            self._pooled, self._fresh = self._make_transports(self.pool_size)
        self._active += 1
        try:
            response = await self._attempt(self._pooled, target, method, path, headers, body)
        except _connection_errors() as error:
            if not reconnect:
                self._active -= 1
                raise _unreachable(target, error) from None
            # Most often a pooled connection that the server closed just as it was reused: the request never
            # got an answer, so it goes once more, on a connection opened for it alone.
            try:
                response = await self._attempt(self._fresh, target, method, path, headers, body)
            except _connection_errors() as error:
                self._active -= 1
                raise _unreachable(target, error) from None
            except BaseException as error:
                self._active -= 1
                raise _typed(error, self) from None
        except BaseException as error:
            self._active -= 1
            raise _typed(error, self) from None
        return Answer(response, self._release)

    async def _attempt(
        self, transport: Any, target: Target, method: str, path: str, headers: list[tuple[str, str]], body: Body | None
    ) -> httpx2.Response:
        import httpx2

        content: bytes | AsyncIterator[bytes] | None
        all_headers = [*target.headers, *headers]
        if isinstance(body, SlicedBody):
            content = _aiter(body.slices())
            all_headers.append(("content-length", str(body.length)))
        else:
            content = body
        request = httpx2.Request(
            method, target.url(path), headers=all_headers, content=content, extensions={"timeout": self._timeouts}
        )
        response: httpx2.Response = await transport.handle_async_request(request)
        return response

    def _release(self) -> None:
        self._active -= 1

    async def aclose(self) -> None:
        pooled, fresh, self._pooled, self._fresh = self._pooled, self._fresh, None, None
        for transport in (pooled, fresh):
            if transport is not None:
                await transport.aclose()


def _httpx2_transports(pool_size: int) -> tuple[Any, Any]:
    """The pooled transport, and one that keeps no connection (each request on a new one), sharing one TLS
    context."""
    import httpx2

    context = httpx2.create_ssl_context()
    pooled = httpx2.AsyncHTTPTransport(
        verify=context,
        limits=httpx2.Limits(
            max_connections=pool_size, max_keepalive_connections=pool_size, keepalive_expiry=KEEPALIVE_SECONDS
        ),
    )
    fresh = httpx2.AsyncHTTPTransport(
        verify=context, limits=httpx2.Limits(max_connections=pool_size, max_keepalive_connections=0)
    )
    return pooled, fresh


def _connection_errors() -> tuple[type[BaseException], ...]:
    import httpx2

    # Raised before any answer byte: connecting, writing the request, or reading the status line.
    return (httpx2.ConnectError, httpx2.ReadError, httpx2.WriteError, httpx2.RemoteProtocolError)


def _unreachable(target: Target, error: BaseException) -> UpstreamUnavailable:
    return UpstreamUnavailable(
        f"Azure OpenAI at {target.base} could not be reached ({type(error).__name__}). Check the "
        "account's endpoint in AZURE_OPENAI_ACCOUNTS and the network.",
        headers={"Retry-After": "5"},
    )


def _typed(error: BaseException, upstream: Upstream) -> BaseException:
    import httpx2

    if isinstance(error, httpx2.PoolTimeout):
        return Throttled(
            f"All {upstream.pool_size} connections to Azure OpenAI stayed busy for "
            f"{upstream._timeouts['pool']:g} s; retry after {BUSY_RETRY_AFTER} s.",
            headers={"Retry-After": BUSY_RETRY_AFTER},
        )
    if isinstance(error, httpx2.TimeoutException):
        return GatewayTimeout(f"Azure OpenAI did not answer within {upstream.timeout_seconds:g} s.")
    if isinstance(error, httpx2.TransportError):
        return UpstreamUnavailable(
            f"Azure OpenAI could not be reached ({type(error).__name__}).", headers={"Retry-After": "5"}
        )
    return error


async def _aiter(pieces: Iterator[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece
        await asyncio.sleep(0)  # let other requests run between slices of a large body
