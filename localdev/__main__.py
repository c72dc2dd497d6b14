"""Run the service locally against the Azure simulator: `python -m localdev [--port 7071]`.

Starts the simulator (managed-identity endpoint, ARM, Azure OpenAI data plane) and Azurite (the audit
trail's Table Storage) as child processes on loopback, points the app's settings at them (AUTH_MODE=none),
prints the URL and some copy-paste curl lines, then serves the app like `func start`.

The service's port is bound before anything starts, so a taken port is reported at once. However it stops
(Ctrl+C, SIGTERM from an IDE, `timeout` or a process manager, SIGHUP when its terminal closes, or the host
failing), the child processes are stopped and the working folder is removed; after a signal the exit status
is 128 + its number, as a shell reports it.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import secrets
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from . import host
from .azurite import start_azurite
from .redis_server import redis_server, start_redis
from .wiring import (
    DEMO_ACCOUNTS,
    entra_environment,
    service_environment,
    simulator_config,
    start_simulator,
    stop,
)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class PortTaken(Exception):
    """A port given on the command line is in use; the message says how to choose another."""


def banner(base: str, simulator: str, folder: Path, storage_file: Path | None = None) -> str:
    model = DEMO_ACCOUNTS[0].models[0]
    east_model = DEMO_ACCOUNTS[1].models[0]
    job = DEMO_ACCOUNTS[0].fine_tuning_jobs[0]["id"]
    api = f"{base}/api"
    return f"""
Service:   {api}   (accounts: {", ".join(a.alias for a in DEMO_ACCOUNTS)}; default {DEMO_ACCOUNTS[0].alias})
Page:      {api}/dashboard   (every deployment of every account, estimated cost, actions; open it in a browser)
Simulator: {simulator}   (request log: {simulator}/_sim/requests, state: {simulator}/_sim/state)
Logs:      {folder}   (removed on exit)

Try it:
  # deploy a fine-tuned model (202 while ARM provisions; add ?wait=30 to wait for it)
  curl -i -X PUT {api}/deployments/support-bot -H 'Content-Type: application/json' \\
       -d '{{"model": "{model}", "sku": {{"name": "Standard", "capacity": 1}}}}'
  # watch it: provisioningState goes Accepted -> Creating -> Succeeded
  curl -s {api}/deployments/support-bot
  # scale it
  curl -i -X PATCH {api}/deployments/support-bot -H 'Content-Type: application/json' -d '{{"capacity": 5}}'
  # deploy a model that lives in the 'east' account into 'main' (cross-region)
  curl -i -X PUT '{api}/deployments/east-model?wait=30' -H 'Content-Type: application/json' \\
       -d '{{"model": "{east_model}", "source": "east"}}'
  # every account's deployments in one answer, with estimated cost (what the page shows)
  curl -s {api}/overview
  # the audit trail of every change (stored in Azurite's Table Storage)
  curl -s {api}/audit
  # list, then delete (202, then 204 once gone)
  curl -s {api}/deployments
  curl -i -X DELETE {api}/deployments/support-bot
  # chat through the managed identity (the openai SDK works too: azure_endpoint="{api}")
  curl -s '{api}/openai/deployments/vision/chat/completions?api-version=2024-10-21' \\
       -H 'Content-Type: application/json' -d '{{"messages": [{{"role": "user", "content": "Hello"}}]}}'
  # requests and tokens per caller this month, from the usage ledger
  curl -s '{api}/usage?groupBy=deployment'
  # image analysis, as the original process_image sample
  curl -s -X POST '{api}/process_image?instructions=Describe+this+image' --data-binary @some.png
  # a fine-tuning job, and deploying what it produced
  curl -s {api}/fine_tuning/jobs/{job}
  curl -i -X POST '{api}/fine_tuning/jobs/{job}/deploy?wait=30' -H 'Content-Type: application/json' \\
       -d '{{"deployment": "from-job"}}'
  # a fine-tuned Phi model of the Foundry project 'foundry', live as a serverless endpoint by its name alone
  curl -i -X PUT '{api}/serverless-endpoints/phi-support?wait=30' -H 'Content-Type: application/json' \\
       -d '{{"model": "phi-4-mini-support-ft"}}'
  # chat with it (the key stays in the service): openai.OpenAI(base_url="{api}/serverless-endpoints/phi-support")
  curl -s {api}/serverless-endpoints/phi-support/chat/completions \\
       -H 'Content-Type: application/json' -d '{{"messages": [{{"role": "user", "content": "Hello"}}]}}'
  curl -i -X DELETE {api}/serverless-endpoints/phi-support
  # deploy through the requests queue (Azurite), as a pipeline would, and wait for the result message
  .venv/bin/python -m localdev.enqueue --storage {storage_file or "<file>"} \\
       '{{"action": "deploy", "name": "queued-bot", "body": {{"model": "{model}", "ttlHours": 24}}}}'
  # the idle report, and the sweep (expiry, keep-alive, deploy intents) run now through the admin endpoint
  curl -s {api}/deployments/idle
  curl -i -X POST {base}/admin/functions/sweep -H 'Content-Type: application/json' -d '{{"input": ""}}'
"""


def _exit_on_signal(signum: int, _: FrameType | None) -> None:
    # Further signals would interrupt the clean-up this exit starts; it is bounded (see wiring.stop).
    for other in STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def _signals_exit() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP raise SystemExit, so every `finally` and context exit runs.

    uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the handler found before it
    started: this one. Without it, SIGTERM's default action would end the process with its children left running.
    """
    previous = {number: signal.signal(number, _exit_on_signal) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _reserve(port: int) -> socket.socket:
    try:
        return host.reserve_port(port)
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
        raise PortTaken(
            f"port {port} on 127.0.0.1 is already in use (another bin/run-local or func start?). "
            f"Choose another port with --port N, e.g. bin/run-local --port {port + 1}, "
            "or --port 0 for any free one (the banner shows which)."
        ) from None


def _check_simulator_port(port: int) -> None:
    if port:
        try:
            host.reserve_port(port).close()
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            raise PortTaken(
                f"port {port} on 127.0.0.1 is already in use. Leave out --simulator-port (a free port is "
                "chosen) or choose another with --simulator-port N."
            ) from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="localdev", description="Run the service locally against the Azure simulator."
    )
    parser.add_argument(
        "--port", type=int, default=7071, help="port of the service (default 7071, as func start; 0: a free one)"
    )
    parser.add_argument("--simulator-port", type=int, default=0, help="port of the simulator (default: a free one)")
    parser.add_argument(
        "--provisioning-delay", type=float, default=6.0, help="seconds the simulator takes to provision (default 6)"
    )
    args = parser.parse_args(argv)

    with _signals_exit():
        try:
            listener = _reserve(args.port)
            _check_simulator_port(args.simulator_port)
        except PortTaken as taken:
            parser.exit(1, f"{parser.prog}: {taken}\n")
        with listener, contextlib.ExitStack() as cleanup:
            _run(args, listener, cleanup)


def _run(args: argparse.Namespace, listener: socket.socket, cleanup: contextlib.ExitStack) -> None:
    # Exits in reverse: Azurite and the simulator are stopped before their folder is removed.
    folder = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="localdev-")))
    identity_header = secrets.token_urlsafe(24)
    config = simulator_config(provisioningDelaySeconds=args.provisioning_delay, retryAfterSeconds=2)
    config_path = folder / "simulator.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    simulator = start_simulator(config_path, identity_header, folder / "sim.log", port=args.simulator_port)
    cleanup.callback(stop, simulator.process)
    storage = folder / "azurite"
    storage.mkdir()
    azurite = start_azurite(storage, folder / "azurite.log")
    cleanup.callback(azurite.stop)
    redis_settings: dict[str, str] = {}
    if redis_server() is not None:  # bin/run-local installs it; without it the limits count in memory
        redis = start_redis(folder)
        cleanup.callback(redis.stop)
        redis_settings = redis.settings()
    # For `python -m localdev.enqueue`: this run's throwaway Azurite key, readable by the user only, removed on exit.
    storage_file = folder / "storage-connection"
    storage_file.touch(mode=0o600)
    storage_file.write_text(azurite.connection_string, encoding="utf-8")
    # azure-identity reaches the simulator's Entra endpoint over HTTPS, trusting its throwaway CA.
    os.environ.update(entra_environment(simulator.entra_url, simulator.ca_bundle))
    os.environ.update(
        service_environment(
            simulator.url,
            identity_header,
            ARM_POLL_INTERVAL_SECONDS="2",
            AUTH_MODE="none",
            AzureWebJobsStorage=azurite.connection_string,
        )
    )
    os.environ.update(redis_settings)
    port = listener.getsockname()[1]
    print(banner(f"http://127.0.0.1:{port}", simulator.url, folder, storage_file))
    sys.stdout.flush()
    host.serve(port, sock=listener)


if __name__ == "__main__":
    main()
