"""Serving the simulator with uvicorn: on the main thread (the CLI) or in a background thread (tests)."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from .app import build_app
from .runtime import SimulatorRuntime


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind before serving so that `--port 0` knows its real port before announcing it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto says TCP;
    # with proto 0 every small response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def base_url(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    return f"http://{shown_host}:{port}"


def make_server(app: Starlette, log_level: str = "warning") -> uvicorn.Server:
    # No lifespan: the app needs no startup work, and it keeps shutdown quick.
    return uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="off"))


@dataclass
class RunningSimulator:
    """A simulator served from a daemon thread; use as a context manager or call stop()."""

    base_url: str
    app: Starlette
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def runtime(self) -> SimulatorRuntime:
        runtime: SimulatorRuntime = self.app.state.simulator
        return runtime

    @property
    def identity_header(self) -> str:
        return self.runtime.identity_header

    @property
    def token_endpoint(self) -> str:
        return f"{self.base_url}/msi/token"

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_in_thread(
    config: dict[str, Any] | None = None,
    *,
    identity_header: str | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 10.0,
) -> RunningSimulator:
    """Serve a new simulator on host:port (0 = a free port) and return once it accepts connections."""
    app = build_app(config, identity_header)
    sock = bind_socket(host, port)
    server = make_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="azure-simulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("the Azure simulator did not start")
        time.sleep(0.01)
    return RunningSimulator(base_url=base_url(host, sock), app=app, server=server, thread=thread)
