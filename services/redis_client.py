"""The Redis client the limits and the failover breaker share: Azure Managed Redis with Microsoft Entra ID.

In Azure the client authenticates with the app's own credential (its managed identity) through redis-entraid's
credential provider: a token for `https://redis.azure.com/.default`, the token's object id as the user name,
re-authenticated on each connection before the token expires. No access key exists anywhere, and the
connection is TLS. For a local stand-in (redis-server on loopback) `REDIS_PASSWORD` replaces the token and
`REDIS_SSL=false` turns TLS off; neither is meant for Azure.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("redis")

REDIS_SCOPE = "https://redis.azure.com/.default"


def entra_credential_provider(credential: Any) -> Any:
    """redis-entraid's streaming credential provider over the app's own azure-identity credential."""
    from redis.auth.token_manager import RetryPolicy, TokenManagerConfig
    from redis_entraid.cred_provider import EntraIdCredentialsProvider
    from redis_entraid.identity_provider import DefaultAzureCredentialProvider

    identity = DefaultAzureCredentialProvider(credential, (REDIS_SCOPE,))
    # Refresh at 70% of a token's life; a failed token request is retried a few times, briefly.
    config = TokenManagerConfig(0.7, 0, 3000, RetryPolicy(3, 100))
    return EntraIdCredentialsProvider(identity, config)


def make_redis(
    host_port: str,
    *,
    credential: Any,
    password: str | None,
    ssl: bool,
    timeout_seconds: float,
) -> Any:
    """An asyncio Redis client for `host:port`; connections are made on first use."""
    from redis.asyncio import Redis

    host, _, port = host_port.rpartition(":")
    options: dict[str, Any] = {
        "host": host.strip("[]"),
        "port": int(port),
        "ssl": ssl,
        "socket_timeout": timeout_seconds,
        "socket_connect_timeout": timeout_seconds,
        "health_check_interval": 30,
        "max_connections": 64,
    }
    if password:
        options["password"] = password
    else:
        options["credential_provider"] = entra_credential_provider(credential)
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    # One attempt: an unreachable store is handled by LIMITS_WHEN_STORE_DOWN, never waited on.
    options["retry"] = Retry(NoBackoff(), 0)
    return Redis(**options)
