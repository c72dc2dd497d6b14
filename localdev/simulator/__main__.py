"""python -m localdev.simulator --port P [--host H] [--config file.json] [--identity-header SECRET]"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import sys
from typing import Any

import uvicorn

from .app import build_app
from .config import ConfigError
from .server import base_url, bind_socket, make_server

READY_LINE = "Azure simulator listening on {url}"


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
    return parser.parse_args(argv)


def _load_config(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    with open(path, encoding="utf-8") as handle:
        loaded: Any = json.load(handle)
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the config must be a JSON object")
    return loaded


async def _serve_and_announce(server: uvicorn.Server, sock: socket.socket, lines: list[str]) -> None:
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
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
    lines.insert(0, READY_LINE.format(url=base_url(args.host, sock)))
    asyncio.run(_serve_and_announce(make_server(app, args.log_level), sock, lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
