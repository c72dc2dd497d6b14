"""The producer's and consumer's side of the deployment queues in end-to-end tests: the real azure-storage-queue
client against Azurite, as a pipeline or a Logic App would use it."""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy


class Queues:
    def __init__(self, connection_string: str, requests: str, results: str) -> None:
        self.connection_string = connection_string
        self.requests = QueueClient.from_connection_string(connection_string, requests)
        self.requests_base64 = QueueClient.from_connection_string(
            connection_string, requests, message_encode_policy=TextBase64EncodePolicy()
        )
        self.results = QueueClient.from_connection_string(connection_string, results)
        self.poison = QueueClient.from_connection_string(connection_string, f"{requests}-poison")
        self.seen: list[dict[str, Any]] = []
        for client in (self.requests, self.results, self.poison):
            with contextlib.suppress(ResourceExistsError):
                client.create_queue()

    def send(self, message: dict[str, Any] | str, *, base64: bool = False) -> None:
        text = message if isinstance(message, str) else json.dumps(message)
        (self.requests_base64 if base64 else self.requests).send_message(text)

    def drain(self) -> list[dict[str, Any]]:
        """Every result waiting now (read and deleted), added to `seen`."""
        found = []
        for message in self.results.receive_messages(messages_per_page=32, max_messages=32):
            found.append(json.loads(message.content))
            self.results.delete_message(message)
        self.seen.extend(found)
        return found

    def results_for(self, request_id: str, count: int = 1, timeout: float = 20) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            mine = [result for result in self.seen if result.get("requestId") == request_id]
            if len(mine) >= count or time.monotonic() > deadline:
                return mine
            time.sleep(0.1)

    def result_for(self, request_id: str, timeout: float = 20) -> dict[str, Any]:
        found = self.results_for(request_id, timeout=timeout)
        assert found, f"no result for {request_id} within {timeout} s"
        return found[-1]

    def poisoned(self) -> list[str]:
        return [message.content for message in self.poison.peek_messages(max_messages=32)]

    def close(self) -> None:
        """Close the connections (Azurite waits for open ones when it stops)."""
        for client in (self.requests, self.requests_base64, self.results, self.poison):
            client.close()

    def waiting(self) -> int:
        return int(self.requests.get_queue_properties().approximate_message_count)
