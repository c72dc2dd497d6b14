"""Serving the simulator with uvicorn: on the main thread (the CLI) or in a background thread (tests)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from .app import build_app
from .runtime import SimulatorRuntime
from .tls import TlsFiles, make_tls_files


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


def make_server(app: Starlette, log_level: str = "warning", tls: TlsFiles | None = None) -> uvicorn.Server:
    # No lifespan: the app needs no startup work, and it keeps shutdown quick.
    return uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=log_level,
            access_log=False,
            lifespan="off",
            ssl_certfile=tls.cert if tls is not None else None,
            ssl_keyfile=tls.key if tls is not None else None,
        )
    )


def https_url(host: str, sock: socket.socket) -> str:
    return "https" + base_url(host, sock).removeprefix("http")


async def serve_all(servers: list[tuple[uvicorn.Server, socket.socket]]) -> None:
    """Serve plain HTTP and the HTTPS (Entra) listener on one event loop: one app, one runtime."""
    await asyncio.gather(*(server.serve(sockets=[sock]) for server, sock in servers))


@dataclass
class RunningSimulator:
    """A simulator served from a daemon thread; use as a context manager or call stop()."""

    base_url: str
    app: Starlette
    server: uvicorn.Server
    thread: threading.Thread
    entra_url: str | None = None  # https://127.0.0.1:<port>, the AZURE_AUTHORITY_HOST of a client
    tls: TlsFiles | None = None
    tls_server: uvicorn.Server | None = None

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
        if self.tls_server is not None:
            self.tls_server.should_exit = True
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
    tls_dir: Path | None = None,
) -> RunningSimulator:
    """Serve a new simulator on host:port (0 = a free port) and return once it accepts connections. With
    `tls_dir`, the same app is also served over HTTPS on another free port (the Entra endpoint)."""
    app = build_app(config, identity_header)
    sock = bind_socket(host, port)
    server = make_server(app)
    servers = [(server, sock)]
    tls = make_tls_files(tls_dir) if tls_dir is not None else None
    if tls is not None:
        servers.append((make_server(app, tls=tls), bind_socket(host, 0)))
    thread = threading.Thread(target=lambda: asyncio.run(serve_all(servers)), name="azure-simulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not all(item.started for item, _ in servers):
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError("the Azure simulator did not start")
        time.sleep(0.01)
    running = RunningSimulator(base_url=base_url(host, sock), app=app, server=server, thread=thread)
    if tls is not None:
        running.tls, running.tls_server = tls, servers[1][0]
        running.entra_url = https_url(host, servers[1][1])
    return running
