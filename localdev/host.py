"""A local stand-in for the Azure Functions host: serves the app's registered HTTP functions on uvicorn.

The route table is built from `app.get_functions()` (route template, methods, auth level), so there is no
second list of routes to drift from the real one. Handlers receive the same FastAPI `Request` objects the
Functions worker gives them with the http-fastapi extension, and their responses are sent as they are,
streams included.

    python -m localdev.host --port 7071 [--settings local.settings.json] [--function-key KEY]

Like `func start`, it loads `local.settings.json` Values into the environment (without overriding what is
already set). Like `func start`, it does not check function keys unless given `--function-key`
(or `LOCALDEV_FUNCTION_KEY`); then FUNCTION and ADMIN routes need `x-functions-key` or `?code=`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import inspect
import json
import logging
import os
import re
import secrets
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .triggers import TriggerFunction, admin_endpoint, start_triggers, trigger_functions

log = logging.getLogger("localdev.host")
access = logging.getLogger("localdev.host.access")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MAX_REQUEST_BYTES = 100 * 1024 * 1024  # the Functions host's request length limit
MAX_HEADER_BYTES = 32 * 1024  # Kestrel's default limit on all request headers together
_PARAMETER = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(\?)?(?::[^}]*)?\}")


@dataclass(frozen=True)
class HttpFunction:
    """One registered HTTP function, as the Functions host sees it."""

    name: str
    route: str
    methods: tuple[str, ...]
    auth_level: str
    argument: str
    handler: Callable[..., Any]


def http_functions(function_app: Any) -> list[HttpFunction]:
    """The HTTP-triggered functions of a `func.FunctionApp`, read from its own registry."""
    found = []
    for function in function_app.get_functions():
        trigger = function.get_trigger()
        if getattr(trigger, "type", None) != "httpTrigger":
            continue
        methods = tuple(str(getattr(m, "value", m)).upper() for m in (trigger.methods or ())) or (
            "GET",
            "POST",
            "PUT",
            "PATCH",
            "DELETE",
            "HEAD",
            "OPTIONS",
        )
        level = getattr(trigger.auth_level, "value", trigger.auth_level)
        found.append(
            HttpFunction(
                name=function.get_function_name(),
                route=trigger.route or function.get_function_name(),
                methods=methods,
                auth_level=str(level).lower(),
                argument=trigger.name,
                handler=function.get_user_function(),
            )
        )
    return found


def starlette_paths(route: str, prefix: str) -> list[str]:
    """Starlette paths for a Functions route template: constraints dropped, `{x?}` optional, `{*x}` catch-all."""
    optional = [m.group(2) for m in _PARAMETER.finditer(route) if m.group(3)]

    def convert(template: str) -> str:
        def parameter(match: re.Match[str]) -> str:
            name = match.group(2)
            return f"{{{name}:path}}" if match.group(1) else f"{{{name}}}"

        path = _PARAMETER.sub(parameter, template).strip("/")
        return "/" + "/".join(part for part in (prefix.strip("/"), path) if part)

    paths = [convert(route)]
    if optional:
        # ASP.NET lets an optional trailing parameter be left out; the shorter path serves that case.
        shorter = re.sub(r"/?\{[A-Za-z_][A-Za-z0-9_]*\?(?::[^}]*)?\}\s*$", "", route)
        paths.append(convert(shorter))
    return paths


def build_app(
    functions: list[HttpFunction],
    *,
    route_prefix: str = "api",
    function_key: str | None = None,
    triggers: Sequence[TriggerFunction] = (),
    run_triggers: bool = False,
) -> Starlette:
    """The HTTP routes, and the admin endpoint for `triggers`; `run_triggers` also runs their queue listeners and
    timers while the app is up (the local host does; an in-process test host runs them only through the admin
    endpoint)."""
    routes = []
    # Literal segments win over parameters, as in ASP.NET routing.
    ordered = sorted(functions, key=lambda f: (f.route.count("{"), -len(f.route)))
    for function in ordered:
        endpoint = _endpoint(function, function_key)
        for path in starlette_paths(function.route, route_prefix):
            routes.append(Route(path, endpoint, methods=list(function.methods), name=f"{function.name}:{path}"))
    admin = admin_endpoint(list(triggers), lambda request: not function_key or _has_key(request, function_key))
    routes.append(Route("/admin/functions/{name}", admin, methods=["POST"]))
    lifespan = functools.partial(_lifespan, triggers=list(triggers) if run_triggers else [])
    return Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_allowed}, lifespan=lifespan)


@contextlib.asynccontextmanager
async def _lifespan(_: Starlette, triggers: list[TriggerFunction]) -> AsyncIterator[None]:
    """Run the queue listeners and timers while serving; on shutdown, stop them and close the app's clients
    (pooled connections, worker threads), as a clean stop should."""
    tasks = start_triggers(triggers)
    yield
    for task in tasks:
        task.cancel()
    from services.context import get_context

    await get_context().aclose()


async def _not_found(request: Request, _: Exception) -> Response:
    message = f"No function serves {request.method} {request.url.path}."
    return JSONResponse({"error": {"code": "NotFound", "message": message}}, status_code=404)


async def _not_allowed(request: Request, _: Exception) -> Response:
    message = f"{request.url.path} does not take {request.method}."
    return JSONResponse({"error": {"code": "MethodNotAllowed", "message": message}}, status_code=405)


def _endpoint(function: HttpFunction, function_key: str | None) -> Callable[[Request], Awaitable[Response]]:
    is_async = inspect.iscoroutinefunction(function.handler)

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        response = await _call(request)
        # The host's own access line: no query string, which can carry caller text (process_image's instructions).
        access.info(
            "%s %s -> %d (%.1f ms)",
            request.method,
            request.url.path,
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response

    async def _call(request: Request) -> Response:
        if sum(len(name) + len(value) for name, value in request.headers.raw) > MAX_HEADER_BYTES:
            return PlainTextResponse("Request headers too large.", status_code=431)
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_REQUEST_BYTES:
            return PlainTextResponse("Request body too large.", status_code=413)
        if function_key and function.auth_level != "anonymous" and not _has_key(request, function_key):
            return Response(status_code=401)
        arguments = {function.argument: request}
        if is_async:
            result = await function.handler(**arguments)
        else:
            result = await run_in_threadpool(function.handler, **arguments)
        return _as_response(result)

    return endpoint


def _has_key(request: Request, key: str) -> bool:
    given = request.headers.get("x-functions-key") or request.query_params.get("code") or ""
    return secrets.compare_digest(given.encode(), key.encode())


def _as_response(result: Any) -> Response:
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(status_code=204)
    if isinstance(result, str):
        return PlainTextResponse(result)
    return JSONResponse(result)


def load_local_settings(path: Path, environ: dict[str, str] | Any = os.environ) -> list[str]:
    """Copy `Values` of a local.settings.json into the environment, as `func start` does; returns the names set."""
    if not path.is_file():
        return []
    values = json.loads(path.read_text(encoding="utf-8")).get("Values", {})
    applied = []
    for name, value in values.items():
        if name not in environ:
            environ[name] = str(value)
            applied.append(name)
    return applied


def route_prefix_from_host_json(root: Path = PROJECT_ROOT) -> str:
    host_json = json.loads((root / "host.json").read_text(encoding="utf-8"))
    return str(host_json.get("extensions", {}).get("http", {}).get("routePrefix", "api"))


@dataclass(frozen=True)
class _Listed:
    """An app's functions as listed once: azure-functions adds blueprints' functions again on each listing."""

    functions: tuple[Any, ...]

    def get_functions(self) -> list[Any]:
        return list(self.functions)


@functools.cache
def _listed(module: str) -> _Listed:
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    return _Listed(tuple(importlib.import_module(module).app.get_functions()))


@functools.cache
def registered_functions(module: str = "function_app") -> list[HttpFunction]:
    """The HTTP functions of the app in `module` (azure-functions builds them once per app)."""
    return http_functions(_listed(module))


@functools.cache
def registered_triggers(module: str = "function_app") -> list[TriggerFunction]:
    """The queue- and timer-triggered functions of the app in `module`."""
    return trigger_functions(_listed(module))


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # azure-identity and azure-core log every token request and header set at INFO.
    logging.getLogger("azure").setLevel(logging.WARNING)


def reserve_port(port: int, host: str = "127.0.0.1") -> socket.socket:
    """Bind the host's listening socket now (port 0: a free one), so a taken port is known before anything starts.

    Raises OSError (errno EADDRINUSE when another process has the port). The socket is not inherited by child
    processes, and it is not listening yet: connections are refused until `serve(sock=...)` accepts them.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a TIME_WAIT is no conflict
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def serve(
    port: int, *, host: str = "127.0.0.1", function_key: str | None = None, sock: socket.socket | None = None
) -> None:
    """Serve on host:port, or on `sock` from reserve_port when given (then host and port are not used)."""
    import uvicorn

    configure_logging()
    asgi = build_app(
        registered_functions(),
        route_prefix=route_prefix_from_host_json(),
        function_key=function_key,
        triggers=registered_triggers(),
        run_triggers=True,
    )
    log_level = os.environ.get("LOCALDEV_LOG_LEVEL", "info")
    if sock is None:
        uvicorn.run(asgi, host=host, port=port, log_level=log_level, access_log=False)
        return
    server = uvicorn.Server(uvicorn.Config(asgi, log_level=log_level, access_log=False))
    bound_host, bound_port = sock.getsockname()[:2]
    log.info("Serving on http://%s:%d", bound_host, bound_port)
    server.run(sockets=[sock])
    if not server.started:
        raise RuntimeError("the host did not start; see the lines above")


def describe(functions: Iterable[HttpFunction], base_url: str, prefix: str) -> str:
    lines = []
    for function in functions:
        path = starlette_paths(function.route, prefix)[0]
        lines.append(f"  {function.name:<20} {','.join(function.methods):<8} {base_url}{path}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the Function App's HTTP functions locally on uvicorn.")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default loopback only)")
    parser.add_argument("--settings", type=Path, default=PROJECT_ROOT / "local.settings.json")
    parser.add_argument("--function-key", default=os.environ.get("LOCALDEV_FUNCTION_KEY"))
    args = parser.parse_args(argv)
    configure_logging()
    applied = load_local_settings(args.settings)
    if applied:
        log.info("Loaded %d setting(s) from %s", len(applied), args.settings)
    prefix = route_prefix_from_host_json()
    print(f"Functions:\n{describe(registered_functions(), '', prefix)}")
    sys.stdout.flush()
    serve(args.port, host=args.host, function_key=args.function_key)


if __name__ == "__main__":
    main()
