"""The Function App's own queues: results go out on `DEPLOYMENT_RESULTS_QUEUE`, checks come back on the requests queue.

Clients are made once per process (the application context holds them) from the same storage settings the
Functions host uses for the queue trigger: the `AzureWebJobsStorage` connection string (Azurite locally), or in
Azure the identity-based `AzureWebJobsStorage__queueServiceUri` / `__accountName`. Messages are written as plain
JSON text (no base64), which every consumer (the azure-storage-queue client, Logic Apps, Event Grid) reads as is.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from .errors import ConfigurationError, StateUnavailable
from .settings import Settings
from .work_store import storage_credential

log = logging.getLogger("queue")


class QueueClients:
    def __init__(self, settings: Settings, credential: Callable[[], Any]) -> None:
        self._settings = settings
        self._credential = credential
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def publish(self, result: dict[str, Any]) -> None:
        """One result message on the results queue (created on first use)."""
        self._send(self._settings.results_queue, json.dumps(result, separators=(",", ":")))
        log.info(
            "result %s %s %s -> %s", result.get("requestId"), result.get("action"), result.get("name"), result["status"]
        )

    def check_later(self, message: str, delay_seconds: int) -> str:
        """Put a request back on the requests queue, invisible for `delay_seconds`, to look at its operation again;
        answers the new message's id."""
        sent = self._send(self._settings.requests_queue, message, visibility_timeout=delay_seconds)
        return str(getattr(sent, "id", "") or "")

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    def _send(self, queue: str, text: str, **options: Any) -> Any:
        from azure.core.exceptions import AzureError

        try:
            return self._client(queue).send_message(text, **options)
        except AzureError as error:
            raise StateUnavailable(
                f"Queue '{queue}' could not be written ({type(error).__name__}). Check the Function App's storage "
                "(AzureWebJobsStorage) and its Storage Queue Data Contributor role.",
                headers={"Retry-After": "30"},
            ) from None

    def _client(self, queue: str) -> Any:
        client = self._clients.get(queue)
        if client is not None:
            return client
        with self._lock:
            client = self._clients.get(queue)
            if client is None:
                client = self._make(queue)
                from azure.core.exceptions import ResourceExistsError

                with suppress(ResourceExistsError):
                    client.create_queue()
                self._clients[queue] = client
        return client

    def _make(self, queue: str) -> Any:
        from azure.storage.queue import QueueClient

        settings = self._settings
        storage = settings.storage
        if storage.connection_string:
            return QueueClient.from_connection_string(storage.connection_string, queue)
        endpoint = settings.storage_queue_service_uri
        if not endpoint and storage.account_name:
            endpoint = f"https://{storage.account_name}.queue.core.windows.net"
        if not endpoint:
            raise ConfigurationError(
                "Queued deployments need the Function App's storage: set AzureWebJobsStorage (UseDevelopmentStorage="
                "true with Azurite) or AzureWebJobsStorage__queueServiceUri with __credential=managedidentity.",
                target="AzureWebJobsStorage",
            )
        return QueueClient(endpoint, queue, credential=storage_credential(settings, self._credential))
