"""The app's functions served from the test process, one application context per configuration.

A configuration that only changes the app's own settings (AUTH_MODE, storage, a malformed value ...) needs no
process of its own: each gets an `AppContext` built from its settings mapping, and the local host's routes
(the same `localdev.host.build_app` over `app.get_functions()`) run with that context in force for requests
under `/_ctx/<key>/`. The service code, azure-identity, requests and Azurite run unmodified; only what is
decided at import time (the host's auth level in AUTH_MODE=keys) or read by azure-identity from the process
environment needs a separate host process.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Mapping
from typing import Any

import uvicorn

from localdev.host import build_app, registered_functions, registered_triggers, route_prefix_from_host_json
from services.context import AppContext, using

_PREFIX = re.compile(r"^/_ctx/([A-Za-z0-9-]+)(/.*)$")
Scope = dict[str, Any]


class InProcessHost:
    """uvicorn in a thread of the test process, serving every context registered with `add`."""

    def __init__(self) -> None:
        self._contexts: dict[str, AppContext] = {}
        self._keys = itertools.count(1)
        # The admin endpoint runs queue and timer functions on demand; no listener or timer runs by itself here.
        self._inner = build_app(
            registered_functions(), route_prefix=route_prefix_from_host_json(), triggers=registered_triggers()
        )
        config = uvicorn.Config(
            self._route, host="127.0.0.1", port=0, log_level="warning", lifespan="off", interface="asgi3"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="inprocess-host", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the in-process host did not start")
            time.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def add(self, settings: Mapping[str, str]) -> str:
        """A new context for `settings`; answers the base URL its requests go to (before `/api`)."""
        key = str(next(self._keys))
        context = AppContext(settings)
        context.start()
        # azure-identity reads the managed-identity variables when the credential is made: make it now, while
        # this process's environment names the caller's simulator (another suite may point it elsewhere later).
        context.credential  # noqa: B018
        self._contexts[key] = context
        return f"{self.url}/_ctx/{key}"

    async def _route(self, scope: Scope, receive: Any, send: Any) -> None:
        match = _PREFIX.match(scope.get("path", "")) if scope["type"] == "http" else None
        context = self._contexts.get(match.group(1)) if match else None
        if match is None or context is None:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        path = match.group(2)
        with using(context):
            await self._inner({**scope, "path": path, "raw_path": path.encode()}, receive, send)

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        for context in self._contexts.values():
            context.close()  # the server's event loop is gone: its async clients go with it
        self._contexts.clear()
