"""The Function App's identity: one credential per process and one cached token provider per scope.

`DefaultAzureCredential` picks the managed identity in Azure (honouring `AZURE_CLIENT_ID` for a
user-assigned one) and `az login` or the local simulator's identity endpoint on a workstation. Only
azure-identity's own environment variables configure it (`AZURE_CLIENT_ID`, `IDENTITY_ENDPOINT`,
`IDENTITY_HEADER`, `AZURE_TOKEN_CREDENTIALS`, ...). Tokens never reach a log or a response.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import IdentityUnavailable

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

log = logging.getLogger(__name__)

_lock = threading.Lock()
_credential: TokenCredential | None = None
_providers: dict[str, TokenProvider] = {}

IDENTITY_HINT = (
    "In Azure, check that the Function App has a managed identity (and that AZURE_CLIENT_ID names it "
    "when it is user-assigned); locally, check IDENTITY_ENDPOINT and IDENTITY_HEADER, or run `az login`."
)


def get_credential() -> TokenCredential:
    """The process-wide credential, made on first use (azure.identity is imported only then)."""
    global _credential
    if _credential is None:
        with _lock:
            if _credential is None:
                from azure.identity import DefaultAzureCredential

                _credential = DefaultAzureCredential()
    return _credential


class TokenProvider:
    """A bearer-token callable for one scope: cached, refreshed before expiry, safe across threads.

    azure-identity's `get_bearer_token_provider` does the caching and refresh; the lock makes concurrent
    first calls share one token request instead of each fetching its own.
    """

    def __init__(self, scope: str, credential: TokenCredential | None = None) -> None:
        self.scope = scope
        self._credential = credential
        self._provider: Callable[[], str] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> str:
        from azure.core.exceptions import ClientAuthenticationError

        with self._lock:
            try:
                if self._provider is None:
                    from azure.identity import get_bearer_token_provider

                    self._provider = get_bearer_token_provider(self._credential or get_credential(), self.scope)
                return self._provider()
            except ClientAuthenticationError as error:
                reason = _reason(error.message or str(error))
                log.warning("No token for scope %s: %s", self.scope, reason)
                raise IdentityUnavailable(
                    f"The service could not get a token for {self.scope}: {reason} {IDENTITY_HINT}"
                ) from None


def token_provider(scope: str) -> TokenProvider:
    """The shared provider for `scope` (one per scope per process)."""
    provider = _providers.get(scope)
    if provider is None:
        with _lock:
            provider = _providers.setdefault(scope, TokenProvider(scope))
    return provider


def _reason(text: str, limit: int = 300) -> str:
    """The useful line of an azure-identity error: the managed identity's own, when DefaultAzureCredential
    lists every credential it tried."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()] or ["no reason given"]
    line = next((item for item in lines if item.startswith("ManagedIdentityCredential:")), lines[0])
    return line if len(line) <= limit else line[: limit - 1] + "…"
