"""python -m localdev.simulator --port P [--host H] [--config file.json] [--identity-header SECRET]"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import uvicorn

from .app import build_app
from .config import ConfigError
from .server import base_url, bind_socket, https_url, make_server, serve_all
from .tls import make_tls_files

READY_LINE = "Azure simulator listening on {url}"
ENTRA_LINE = "Entra endpoint listening on {url}"
CA_LINE = "CA bundle: {path}"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m localdev.simulator",
        description="Local simulator of the Azure managed-identity endpoint and ARM model deployments.",
    )
    parser.add_argument("--port", type=int, required=True, help="port to listen on; 0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--config", help="JSON config file (see localdev/simulator/README.md)")
    parser.add_argument(
        "--identity-header",
        help="X-IDENTITY-HEADER secret; defaults to $IDENTITY_HEADER, else a random one that is printed",
    )
    parser.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    parser.add_argument(
        "--tls-dir",
        help="folder for the throwaway CA and the HTTPS certificate of the Entra endpoint (default: a temp folder)",
    )
    return parser.parse_args(argv)


def _load_config(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    with open(path, encoding="utf-8") as handle:
        loaded: Any = json.load(handle)
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the config must be a JSON object")
    return loaded


async def _serve_and_announce(servers: list[tuple[uvicorn.Server, socket.socket]], lines: list[str]) -> None:
    serving = asyncio.create_task(serve_all(servers))
    while not all(server.started for server, _ in servers):
        if serving.done():
            break
        await asyncio.sleep(0.01)
    else:
        # Announce only once connections are accepted, so a launcher can start as soon as it reads this.
        for line in lines:
            print(line, flush=True)
    await serving


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    secret = args.identity_header or os.environ.get("IDENTITY_HEADER")
    lines: list[str] = []
    if not secret:
        secret = secrets.token_urlsafe(24)
        lines.append(f"IDENTITY_HEADER={secret}")
    try:
        app = build_app(_load_config(args.config), secret)
    except (OSError, ValueError) as error:  # ConfigError and JSON errors are ValueErrors
        print(f"azure simulator: invalid config: {error}", file=sys.stderr)
        return 2
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as error:
        print(f"azure simulator: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    tls = make_tls_files(Path(args.tls_dir or tempfile.mkdtemp(prefix="azure-simulator-tls-")))
    tls_sock = bind_socket(args.host, 0)
    lines.insert(0, READY_LINE.format(url=base_url(args.host, sock)))
    lines.extend([ENTRA_LINE.format(url=https_url(args.host, tls_sock)), CA_LINE.format(path=tls.ca_bundle)])
    servers = [(make_server(app, args.log_level), sock), (make_server(app, args.log_level, tls), tls_sock)]
    asyncio.run(_serve_and_announce(servers, lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
