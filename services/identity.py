"""The Function App's identity: the credential, and cached bearer tokens per scope for the data plane.

`DefaultAzureCredential` picks the managed identity in Azure (honouring `AZURE_CLIENT_ID` for a
user-assigned one) and `az login` or the local simulator's identity endpoint on a workstation. Only
azure-identity's own environment variables configure it (`AZURE_CLIENT_ID`, `IDENTITY_ENDPOINT`,
`IDENTITY_HEADER`, `AZURE_TOKEN_CREDENTIALS`, ...). Tokens never reach a log or a response.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .errors import IdentityUnavailable, ServiceError

if TYPE_CHECKING:
    from azure.core.credentials import AccessToken, AccessTokenInfo, TokenCredential, TokenRequestOptions
    from azure.core.exceptions import ClientAuthenticationError

# What a provider answers when its credential refuses: the scope and azure-identity's error in, a typed error out.
Failure = Callable[[str, "ClientAuthenticationError"], ServiceError]

log = logging.getLogger(__name__)

# A token is renewed this long before it expires, or from the time the identity platform suggests.
REFRESH_MARGIN_SECONDS = 300

IDENTITY_HINT = (
    "In Azure, check that the Function App has a managed identity (and that AZURE_CLIENT_ID names it "
    "when it is user-assigned); locally, check IDENTITY_ENDPOINT and IDENTITY_HEADER, or run `az login`."
)


def make_credential() -> TokenCredential:
    """The app's credential (azure.identity is imported only now). The application context makes one."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


class TokenProvider:
    """Bearer tokens for one scope: fetched once per lifetime, renewed before expiry, shared by all threads.

    The sync call serves the ARM client (which runs in worker threads). `aget` serves the async inference
    path: a cached token costs no thread and no I/O; a renewal runs in a worker thread so the event loop
    never waits on the identity endpoint. Only the one credential object is used for both.
    """

    def __init__(
        self,
        scope: str,
        credential: TokenCredential,
        run_blocking: Callable[[Callable[[], str]], Awaitable[str]] | None = None,
        *,
        failure: Failure | None = None,
    ) -> None:
        self.scope = scope
        self._credential = credential
        self._run_blocking = run_blocking
        self._failure = failure or identity_unavailable
        self._token: AccessTokenInfo | None = None
        self._lock = threading.Lock()

    def __call__(self) -> str:
        return self.info().token

    def info(self) -> AccessTokenInfo:
        """The cached token with its expiry, renewed first when due (one renewal for all waiting threads)."""
        token = self._token
        if token is not None and self._fresh() is not None:
            return token
        with self._lock:
            token = self._token
            if token is not None and self._fresh() is not None:
                return token
            self._token = self._fetch()
            return self._token

    async def aget(self) -> str:
        cached = self._fresh()
        if cached is not None:
            return cached
        if self._run_blocking is None:
            raise RuntimeError("TokenProvider.aget needs run_blocking")
        return await self._run_blocking(self)

    def _fresh(self) -> str | None:
        token = self._token
        if token is None:
            return None
        now = time.time()
        renew_at = token.refresh_on or (token.expires_on - REFRESH_MARGIN_SECONDS)
        return token.token if now < renew_at and now < token.expires_on else None

    def _fetch(self) -> AccessTokenInfo:
        from azure.core.exceptions import AzureError, ClientAuthenticationError

        credential: Any = self._credential
        try:
            return credential.get_token_info(self.scope)  # type: ignore[no-any-return]
        except ClientAuthenticationError as error:
            raise self._failure(self.scope, error) from None
        except AzureError as error:
            # The token endpoint could not be reached (a credential that is not DefaultAzureCredential, e.g. the
            # one of another tenant, raises the transport's error as it is): a 503 to retry, not a 500.
            reason = type(error.inner_exception or error).__name__
            log.warning("No token for scope %s: the token endpoint could not be reached (%s)", self.scope, reason)
            raise IdentityUnavailable(
                f"The service could not reach the token endpoint for {self.scope} ({reason}). Try again; if it "
                f"persists, {IDENTITY_HINT[0].lower()}{IDENTITY_HINT[1:]}",
                headers={"Retry-After": "10"},
            ) from None


class ProviderCredential:
    """A `TokenCredential` over one `TokenProvider`, for azure-core's `BearerTokenCredentialPolicy`.

    The policy keeps its own copy of the token; this adapter makes every policy instance draw from the one
    shared provider, so a refresh happens once per token lifetime however many clients and threads ask.
    """

    def __init__(self, provider: TokenProvider) -> None:
        self.provider = provider

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        from azure.core.credentials import AccessToken

        info = self.get_token_info(*scopes)
        return AccessToken(info.token, info.expires_on)

    def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        if scopes and scopes[0] != self.provider.scope:
            raise ValueError(f"this credential serves {self.provider.scope} only")
        return self.provider.info()


def identity_unavailable(scope: str, error: ClientAuthenticationError) -> IdentityUnavailable:
    """The 503 for a credential that gave no token for `scope` (logged with the useful line of its reason)."""
    reason = _reason(error.message or str(error))
    log.warning("No token for scope %s: %s", scope, reason)
    return IdentityUnavailable(f"The service could not get a token for {scope}: {reason} {IDENTITY_HINT}")


def _reason(text: str, limit: int = 300) -> str:
    """The useful line of an azure-identity error: the managed identity's own, when DefaultAzureCredential
    lists every credential it tried."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()] or ["no reason given"]
    line = next((item for item in lines if item.startswith("ManagedIdentityCredential:")), lines[0])
    return line if len(line) <= limit else line[: limit - 1] + "…"
