"""Token providers: one fetch per token lifetime per scope, renewal before expiry, failures as 503."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.core.credentials import AccessTokenInfo
from azure.core.exceptions import ClientAuthenticationError

from services.context import AppContext
from services.errors import IdentityUnavailable
from services.identity import TokenProvider

SUB = "11111111-1111-1111-1111-111111111111"
ACCOUNTS = {"main": {"subscriptionId": SUB, "resourceGroup": "rg", "accountName": "aoai"}}
ENV = {"AZURE_OPENAI_ACCOUNTS": json.dumps(ACCOUNTS)}


class CountingCredential:
    """A TokenCredential stand-in (the credential's protocol is the boundary here)."""

    def __init__(self, lifetime: float = 3600, fail: bool = False) -> None:
        self.lifetime = lifetime
        self.fail = fail
        self.calls = 0
        self.lock = threading.Lock()

    def get_token_info(self, *scopes: str, options: object = None) -> AccessTokenInfo:
        with self.lock:
            self.calls += 1
        time.sleep(0.01)  # a real token request takes a while: concurrent callers must share it
        if self.fail:
            raise ClientAuthenticationError(
                "DefaultAzureCredential failed\nManagedIdentityCredential: identity endpoint answered 503"
            )
        return AccessTokenInfo(f"token-{self.calls}", int(time.time() + self.lifetime))


def test_one_fetch_for_many_concurrent_callers() -> None:
    credential = CountingCredential()
    provider = TokenProvider("https://x/.default", credential)  # type: ignore[arg-type]
    with ThreadPoolExecutor(16) as pool:
        tokens = set(pool.map(lambda _: provider(), range(200)))
    assert tokens == {"token-1"}
    assert credential.calls == 1


def test_async_callers_share_the_cached_token() -> None:
    credential = CountingCredential()
    context = AppContext(ENV, credential=credential)  # type: ignore[arg-type]
    provider = context.token_provider("https://x/.default")

    async def many() -> set[str]:
        return set(await asyncio.gather(*(provider.aget() for _ in range(100))))

    try:
        assert asyncio.run(many()) == {"token-1"}
    finally:
        context.close()
    assert credential.calls == 1


def test_token_close_to_expiry_is_renewed() -> None:
    credential = CountingCredential(lifetime=200)  # inside the 300 s renewal margin
    provider = TokenProvider("https://x/.default", credential)  # type: ignore[arg-type]
    assert provider() == "token-1"
    assert provider() == "token-2"


def test_failure_is_identity_unavailable_with_the_managed_identity_reason() -> None:
    provider = TokenProvider("https://x/.default", CountingCredential(fail=True))  # type: ignore[arg-type]
    with pytest.raises(IdentityUnavailable) as raised:
        provider()
    assert raised.value.status == 503
    assert "ManagedIdentityCredential: identity endpoint answered 503" in raised.value.message
    assert "IDENTITY_ENDPOINT" in raised.value.message


def test_an_unreachable_token_endpoint_is_503_to_retry() -> None:
    """A credential other than DefaultAzureCredential (another tenant's) raises the transport's own error."""
    from azure.core.exceptions import ServiceRequestError

    class Unreachable:
        def get_token_info(self, *scopes: str, options: object = None) -> AccessTokenInfo:
            raise ServiceRequestError("connection refused")

    with pytest.raises(IdentityUnavailable) as raised:
        TokenProvider("https://x/.default", Unreachable())()  # type: ignore[arg-type]
    assert raised.value.status == 503 and raised.value.headers["Retry-After"]
