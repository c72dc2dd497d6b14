"""Put a deployment request on the local requests queue (Azurite) and print its result, as a producer would.

    python -m localdev.enqueue --storage <file with the connection string> '{"action": "deploy", ...}'

The connection string comes from the file `./bin/run-local` writes into its working folder (readable by you only,
removed on exit), or from `AzureWebJobsStorage`. The message is sent as plain JSON text with the
azure-storage-queue client; the result is read from the results queue (`--no-wait` skips that).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import uuid
from pathlib import Path

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

from services.settings_queue import DEFAULT_REQUESTS_QUEUE, DEFAULT_RESULTS_QUEUE


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Enqueue a deployment request and wait for its result.")
    parser.add_argument("message", help="the request as JSON; requestId is added when missing")
    parser.add_argument("--storage", type=Path, help="a file holding the storage connection string")
    parser.add_argument("--no-wait", action="store_true", help="do not wait for the result")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args(argv)
    connection = (
        args.storage.read_text(encoding="utf-8").strip() if args.storage else os.environ.get("AzureWebJobsStorage")  # noqa: SIM112 - the Functions setting's own name
    )
    if not connection:
        parser.exit(2, "Give --storage FILE or set AzureWebJobsStorage.\n")
    message = json.loads(args.message)
    message.setdefault("requestId", f"local-{uuid.uuid4().hex[:12]}")
    requests = QueueClient.from_connection_string(
        connection, os.environ.get("DEPLOYMENT_REQUESTS_QUEUE", DEFAULT_REQUESTS_QUEUE)
    )
    results = QueueClient.from_connection_string(
        connection, os.environ.get("DEPLOYMENT_RESULTS_QUEUE", DEFAULT_RESULTS_QUEUE)
    )
    with requests, results:
        for client in (requests, results):
            with contextlib.suppress(ResourceExistsError):
                client.create_queue()
        requests.send_message(json.dumps(message))
        print(f"enqueued requestId {message['requestId']}")
        if args.no_wait:
            return
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            for received in results.receive_messages(visibility_timeout=5):
                result = json.loads(received.content)
                if result.get("requestId") == message["requestId"]:
                    results.delete_message(received)
                    print(json.dumps(result, indent=2))
                    return
            time.sleep(0.5)
    sys.exit(f"no result within {args.timeout} s")


if __name__ == "__main__":
    main()
