"""The keys of serverless endpoints: fetched with listKeys when first needed, kept in this process's memory only.

Serverless endpoints take only key authentication, so the service holds the keys and callers never see one. A
key is fetched once per endpoint (concurrent first calls share one listKeys), and fetched again only when the
endpoint refused it (its keys were regenerated). Nothing here logs, returns to a caller or stores a key; the
object's repr names how many it holds, never which.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Fetch = Callable[[str, str, str | None], Awaitable[str]]  # (project alias, endpoint, request id) -> primary key
MAX_KEYS = 1024  # endpoints whose keys are held at once; the oldest goes first


class EndpointKeys:
    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self._keys: dict[tuple[str, str], str] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.fetches = 0  # listKeys calls made, for the log and the tests

    def __repr__(self) -> str:
        return f"EndpointKeys({len(self._keys)} held)"

    async def get(self, project: str, endpoint: str, request_id: str | None) -> str:
        """The endpoint's key, from memory, or from listKeys the first time."""
        key = self._keys.get((project, endpoint))
        if key is not None:
            return key
        return await self._load(project, endpoint, request_id, stale=None)

    async def refresh(self, project: str, endpoint: str, stale: str, request_id: str | None) -> str:
        """A new key after the endpoint refused `stale`; another request that already fetched one shares it."""
        return await self._load(project, endpoint, request_id, stale=stale)

    def forget(self, project: str | None = None, endpoint: str | None = None) -> None:
        """Drop held keys: one endpoint's, one project's, or all."""
        for held in list(self._keys):
            if (project is None or held[0] == project) and (endpoint is None or held[1] == endpoint):
                del self._keys[held]

    async def _load(self, project: str, endpoint: str, request_id: str | None, *, stale: str | None) -> str:
        where = (project, endpoint)
        lock = self._locks.setdefault(where, asyncio.Lock())
        async with lock:
            held = self._keys.get(where)
            if held is not None and held != stale:
                return held
            self.fetches += 1
            key = await self._fetch(project, endpoint, request_id)
            self._keys.pop(where, None)
            self._keys[where] = key
            if len(self._keys) > MAX_KEYS:
                oldest = next(iter(self._keys))
                del self._keys[oldest]
                self._locks.pop(oldest, None)
            return key
