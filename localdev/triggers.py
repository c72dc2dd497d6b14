"""The local host's non-HTTP functions: queue triggers on Azurite, timer triggers on their schedule, and the
Functions admin endpoint `POST /admin/functions/{name}` that runs one now, as `func start` does.

Queue triggers follow the Functions host's queue semantics and host.json's `extensions.queues` settings
(`maxPollingInterval`, `visibilityTimeout`, `batchSize`, `maxDequeueCount`, `messageEncoding`), each of which an
app setting `AzureFunctionsJobHost__extensions__queues__<name>` overrides, as in Azure:
- polling with back-off: from 100 ms, doubling while the queue is empty, up to `maxPollingInterval`;
- a message is leased while its function runs; success deletes it; a failure makes it visible again after
  `visibilityTimeout`; after `maxDequeueCount` deliveries it moves to `<queue>-poison`;
- `messageEncoding: base64` decodes the message before the function sees it (a message that is not base64 fails
  the invocation); `none` hands the text over as it is.
Binding expressions `%NAME%` are resolved from the environment (local.settings.json Values included), falling back
to the app's own default of that setting.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import ncrontab

log = logging.getLogger("localdev.host")
MIN_POLL_SECONDS = 0.1
LEASE_SECONDS = 600  # the host keeps a running message invisible; a function taking longer is not expected here
_EXPRESSION = re.compile(r"%([A-Za-z0-9_]+)%")
_DEFAULTS = {"maxPollingInterval": "00:01:00", "visibilityTimeout": "00:00:00", "batchSize": 16,
             "maxDequeueCount": 5, "messageEncoding": "base64"}  # fmt: skip


@dataclass(frozen=True)
class TriggerFunction:
    name: str
    type: str  # queueTrigger or timerTrigger
    argument: str
    handler: Callable[..., Any]
    binding: Mapping[str, Any]


def trigger_functions(function_app: Any) -> list[TriggerFunction]:
    found = []
    for function in function_app.get_functions():
        trigger = function.get_trigger()
        kind = getattr(trigger, "type", None)
        if kind in ("queueTrigger", "timerTrigger"):
            binding = {key: value for key, value in vars(trigger).items() if not key.startswith("_")}
            found.append(
                TriggerFunction(function.get_function_name(), kind, trigger.name, function.get_user_function(), binding)
            )
    return found


def resolve(expression: str, environ: Mapping[str, str] = os.environ) -> str:
    """`%NAME%` from the app settings (or the app's default of that setting)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if environ.get(name):
            return environ[name]
        from services.settings import Settings

        for field in Settings.model_fields.values():
            if field.alias == name and isinstance(field.default, str):
                return field.default
        raise KeyError(f"the binding expression %{name}% names no app setting")

    return _EXPRESSION.sub(value, expression)


def queue_options(root: Path, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    host = json.loads((root / "host.json").read_text(encoding="utf-8"))
    options = {**_DEFAULTS, **host.get("extensions", {}).get("queues", {})}
    prefix = "AzureFunctionsJobHost__extensions__queues__"
    for name, value in environ.items():
        if name.startswith(prefix):
            options[name[len(prefix) :]] = value
    return options


def timespan_seconds(value: Any) -> float:
    """A .NET TimeSpan ("hh:mm:ss[.fff]") in seconds."""
    hours, minutes, seconds = str(value).split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


async def invoke(function: TriggerFunction, value: Any) -> None:
    arguments = {function.argument: value}
    if asyncio.iscoroutinefunction(function.handler):
        await function.handler(**arguments)
    else:
        await asyncio.to_thread(function.handler, **arguments)


def queue_message(text: str, message_id: str, dequeue_count: int, **times: Any) -> Any:
    import azure.functions.queue as queue

    return queue.QueueMessage(  # type: ignore[no-untyped-call]
        id=message_id, body=text.encode("utf-8"), dequeue_count=dequeue_count, **times
    )


def timer_request() -> Any:
    from azure.functions.timer import TimerRequest

    return TimerRequest(past_due=False)


class QueueListener:
    """Polls one queue and runs its function per message, with the host's retry and poison-queue rules."""

    def __init__(self, function: TriggerFunction, options: Mapping[str, Any], connection: str) -> None:
        from azure.storage.queue import QueueClient

        self.function = function
        self.queue = resolve(str(function.binding["queue_name"]))
        self.max_poll = timespan_seconds(options["maxPollingInterval"])
        self.retry_delay = int(timespan_seconds(options["visibilityTimeout"]))
        self.batch = int(options["batchSize"])
        self.max_dequeue = int(options["maxDequeueCount"])
        self.base64 = str(options["messageEncoding"]).lower() == "base64"
        self.client = QueueClient.from_connection_string(connection, self.queue)
        self.poison = QueueClient.from_connection_string(connection, f"{self.queue}-poison")

    async def run(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        for client in (self.client, self.poison):
            with contextlib.suppress(ResourceExistsError):
                await asyncio.to_thread(client.create_queue)
        log.info("Queue trigger %s listening on '%s'", self.function.name, self.queue)
        interval = MIN_POLL_SECONDS
        while True:
            try:
                messages = await asyncio.to_thread(self._receive)
            except Exception as error:  # storage unreachable: back off as on an empty queue
                log.warning("Queue '%s' could not be read: %s", self.queue, type(error).__name__)
                messages = []
            if not messages:
                await asyncio.sleep(interval)
                interval = min(interval * 2, self.max_poll)
                continue
            interval = MIN_POLL_SECONDS
            await asyncio.gather(*(self._handle(message) for message in messages))

    def _receive(self) -> list[Any]:
        return list(
            self.client.receive_messages(
                messages_per_page=self.batch, max_messages=self.batch, visibility_timeout=LEASE_SECONDS
            )
        )

    async def _handle(self, message: Any) -> None:
        try:
            text = base64.b64decode(message.content, validate=True).decode("utf-8") if self.base64 else message.content
            value = queue_message(
                text,
                message.id,
                message.dequeue_count,
                insertion_time=message.inserted_on,
                expiration_time=message.expires_on,
                pop_receipt=message.pop_receipt,
            )
            await invoke(self.function, value)
        except Exception:
            log.exception(
                "Function %s failed on message %s (delivery %d)", self.function.name, message.id, message.dequeue_count
            )
            await asyncio.to_thread(self._failed, message)
            return
        await asyncio.to_thread(self.client.delete_message, message)

    def _failed(self, message: Any) -> None:
        if message.dequeue_count >= self.max_dequeue:
            log.warning(
                "Message %s moved to '%s-poison' after %d deliveries", message.id, self.queue, message.dequeue_count
            )
            self.poison.send_message(message.content)
            self.client.delete_message(message)
        else:
            self.client.update_message(message, visibility_timeout=self.retry_delay)

    def close(self) -> None:
        self.client.close()
        self.poison.close()


async def run_timer(function: TriggerFunction) -> None:
    """Fire the function at each time its NCRONTAB schedule names (UTC, as WEBSITE_TIME_ZONE is unset)."""
    schedule = ncrontab.parse(resolve(str(function.binding["schedule"])))
    log.info("Timer trigger %s on '%s'", function.name, resolve(str(function.binding["schedule"])))
    while True:
        now = datetime.now(UTC)
        due = schedule.next_after(now)
        await asyncio.sleep((due - now).total_seconds())
        try:
            await invoke(function, timer_request())
        except Exception:
            log.exception("Timer function %s failed", function.name)


def admin_endpoint(functions: list[TriggerFunction], check_key: Callable[[Request], bool]) -> Callable[..., Any]:
    """POST /admin/functions/{name} with {"input": "..."}: run a non-HTTP function now; 202 at once."""
    by_name = {function.name.lower(): function for function in functions}
    running: set[asyncio.Task[None]] = set()

    async def endpoint(request: Request) -> Response:
        if not check_key(request):
            return Response(status_code=401)
        function = by_name.get(request.path_params["name"].lower())
        if function is None:
            return JSONResponse({"error": {"code": "NotFound", "message": "No such non-HTTP function."}}, 404)
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return JSONResponse({"error": {"code": "BadRequest", "message": 'Send {"input": "..."}.'}}, 400)
        given = body.get("input") if isinstance(body, dict) else None
        if function.type == "queueTrigger":
            value = queue_message(str(given or ""), str(uuid.uuid4()), 1)
        else:
            value = timer_request()
        task = asyncio.create_task(_admin_run(function, value))
        running.add(task)
        task.add_done_callback(running.discard)
        return Response(status_code=202)

    return endpoint


async def _admin_run(function: TriggerFunction, value: Any) -> None:
    try:
        await invoke(function, value)
        log.info("Function %s ran (admin endpoint)", function.name)
    except Exception:
        log.exception("Function %s failed (admin endpoint)", function.name)


def start_triggers(functions: list[TriggerFunction], root: Path | None = None) -> list[asyncio.Task[None]]:
    """Start a listener per queue trigger (on `AzureWebJobsStorage`) and a loop per timer trigger."""
    if not functions:
        return []
    root = root or Path(__file__).resolve().parent.parent
    options = queue_options(root)
    tasks = []
    for function in functions:
        if function.type == "timerTrigger":
            tasks.append(asyncio.create_task(run_timer(function)))
            continue
        connection = os.environ.get(str(function.binding.get("connection") or "AzureWebJobsStorage"), "")
        if not connection:
            log.warning("Queue trigger %s not started: AzureWebJobsStorage is not set", function.name)
            continue
        tasks.append(asyncio.create_task(QueueListener(function, options, connection).run()))
    return tasks
