"""One message of the deployment requests queue, processed: idempotent by `requestId`, never holding a worker
while ARM provisions, one result per request on the results queue.

- A message that cannot be acted on (not JSON, unknown action, a body the HTTP route would refuse, an unknown
  alias) is answered `Rejected` at once and consumed.
- The change goes through the same path as the HTTP routes (`DeploymentService`), audited as actor
  `queue:<queue name>` with the producer's `requestedBy`. ARM accepting the change is not the end: the request is
  recorded `Running` and the message is put back on the queue, invisible for `QUEUE_RECHECK_SECONDS`; each later
  delivery looks at the deployment and publishes the result once ARM reached a terminal state.
- The same `requestId` again (a redelivery, a producer's retry) makes no second ARM write: a finished request
  re-publishes its stored result, a running one is checked.
- A transient failure (ARM or storage unavailable, throttling) raises, so the host retries the message; on the
  last attempt (`maxDequeueCount`) a `Failed` result with `attempts` is published before the host moves the message
  to the poison queue.

Targets are pluggable by kind: `account` is the deployment service; `project` is any service with the same
`put`/`scale`/`delete`/`get(alias, name, ...)` methods, found as the context's `serverless` attribute.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from .audit import AuditTrail
from .auth import Caller
from .errors import AccountNotFound, ModelChangeNotSupported, NotFound, ProjectNotFound, ServiceError, ValidationError
from .queue_clients import QueueClients
from .queue_messages import QueueRequest, Rejected, parse
from .results import OperationResult
from .settings import Settings
from .work_store import WorkStore

log = logging.getLogger("queue")

PARTITION = "request"
TRANSIENT_STATUSES = frozenset({408, 429, 502, 503, 504})
_FAILED_STATES = ("failed", "canceled")


class DeploymentTarget(Protocol):
    """What a queue message can act on: deployments of an account, or (when configured) of a project."""

    def put(self, alias: str | None, name: str, body: Any, **options: Any) -> OperationResult: ...
    def scale(self, alias: str | None, name: str, body: Any, **options: Any) -> OperationResult: ...
    def delete(self, alias: str | None, name: str, **options: Any) -> OperationResult: ...
    def get(self, alias: str | None, name: str, **options: Any) -> dict[str, Any]: ...


class Services(Protocol):
    """The parts of the application context the worker uses."""

    @property
    def settings(self) -> Settings: ...
    @property
    def deployments(self) -> Any: ...
    @property
    def queues(self) -> QueueClients: ...
    @property
    def work_store(self) -> WorkStore: ...
    @property
    def audit_store(self) -> Any: ...


# The hook for target kinds: kind -> the context attribute that serves it, and what to say when it is absent.
TARGET_SERVICES: dict[str, tuple[str, str]] = {
    "account": ("deployments", "No deployment service is configured."),
    "project": (
        "serverless",
        "Messages with 'project' target serverless endpoints of Azure AI Foundry projects, which need "
        "FOUNDRY_PROJECTS in the service's settings; none are configured. Use 'account' for Azure OpenAI accounts.",
    ),
}


def target_for(app: Any, kind: str) -> DeploymentTarget:
    attribute, missing = TARGET_SERVICES[kind]
    try:
        service = getattr(app, attribute, None)
    except ServiceError as error:  # a configuration problem of that capability
        raise Rejected("TargetUnavailable", error.message) from None
    if service is None:
        raise Rejected("TargetUnavailable", missing)
    return service  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Delivery:
    """One delivery of a queue message, as the trigger hands it over."""

    text: str
    message_id: str
    dequeue_count: int


class QueueTrail(AuditTrail):
    """The audit trail of a queued request: actor `queue:<queue>`, and what the producer claims to be."""

    def __init__(self, queue: str, request: QueueRequest, store: Any) -> None:
        super().__init__(Caller(name=f"queue:{queue}"), request.request_id, store)
        self.requested_by = request.requested_by

    def record(
        self, action: str, account: str, deployment: str, request: dict[str, Any], *, project: str | None = None
    ) -> Any:
        asked = {**request, "requestedBy": self.requested_by} if self.requested_by else request
        return super().record(action, account, deployment, asked, project=project)


def process(app: Services, delivery: Delivery, *, max_dequeue_count: int) -> str:
    """Process one delivery; answers the status it published, or Running. Raises on a transient failure."""
    try:
        request = parse(delivery.text, delivery.message_id)
    except Rejected as rejected:
        app.queues.publish(_rejected(rejected, delivery))
        return "Rejected"
    try:
        target = target_for(app, request.kind)
        alias = _resolved_alias(app, request)
    except Rejected as rejected:
        app.queues.publish(_rejected(rejected, delivery, request, request.alias))
        return "Rejected"
    store = app.work_store
    record = store.get(PARTITION, request.request_id)
    if record is not None and record.get("state") == "Done":
        app.queues.publish(json.loads(record["result"]))  # the same result again, nothing sent to ARM
        return str(record.get("status"))
    try:
        if record is not None and record.get("state") == "Running":
            check = record.get("checkMessageId")
            if check and check != delivery.message_id:
                # A producer's retry (or a redelivery) while the service's own re-check is queued: that one
                # publishes the result; a second loop would publish it twice.
                log.info("request %s: already being followed; this copy is consumed", request.request_id)
                return "Running"
            return _check(app, target, request, alias, delivery)
        if record is None:
            store.insert(PARTITION, request.request_id, _record("Received", request))
        return _change(app, target, request, alias, delivery)
    except Rejected as rejected:
        return _finish(app, request, alias, _rejected(rejected, delivery, request, alias))
    except ServiceError as error:
        if error.status not in TRANSIENT_STATUSES:
            return _finish(app, request, alias, _outcome(request, alias, "Failed", error=error))
        if delivery.dequeue_count >= max_dequeue_count:
            failed = _outcome(request, alias, "Failed", error=error)
            app.queues.publish({**failed, "attempts": delivery.dequeue_count})
        log.warning("request %s: %s (%s), retried by the queue", request.request_id, error.code, error.status)
        raise


def _change(
    app: Services, target: DeploymentTarget, request: QueueRequest, alias: str | None, delivery: Delivery
) -> str:
    trail = QueueTrail(app.settings.requests_queue, request, app.audit_store)
    options: dict[str, Any] = {"wait": "0", "request_id": request.request_id, "audit": trail}
    try:
        if request.action == "deploy":
            result = target.put(alias, request.name, request.body or {}, **options)
        elif request.action == "scale":
            result = target.scale(alias, request.name, request.body or {}, **options)
        else:
            result = target.delete(alias, request.name, **options)
    except (ValidationError, ModelChangeNotSupported, AccountNotFound, ProjectNotFound) as error:
        raise Rejected(error.code, error.message) from None
    if result.outcome == "accepted":
        return _later(app, request, alias, delivery)
    return _finish(app, request, alias, _outcome(request, alias, "Succeeded", deployment=result.resource))


def _check(
    app: Services, target: DeploymentTarget, request: QueueRequest, alias: str | None, delivery: Delivery
) -> str:
    """A running request: publish its result when ARM is done with the deployment, else look again later."""
    try:
        view: dict[str, Any] | None = target.get(alias, request.name, request_id=request.request_id)
    except NotFound as error:
        if request.action == "delete":
            return _finish(app, request, alias, _outcome(request, alias, "Succeeded"))
        return _finish(app, request, alias, _outcome(request, alias, "Failed", error=error))
    state = str((view or {}).get("provisioningState") or "").lower()
    if state == "succeeded" and request.action != "delete":
        return _finish(app, request, alias, _outcome(request, alias, "Succeeded", deployment=view))
    if state in _FAILED_STATES:
        failure = ServiceError(
            f"The operation on deployment '{request.name}' ended {state}.", code="DeploymentFailed", status=500
        )
        return _finish(app, request, alias, _outcome(request, alias, "Failed", deployment=view, error=failure))
    return _later(app, request, alias, delivery)


def _later(app: Services, request: QueueRequest, alias: str | None, delivery: Delivery) -> str:
    delay = app.settings.queue_recheck_seconds
    check = app.queues.check_later(delivery.text, delay)
    app.work_store.replace(
        PARTITION, request.request_id, {**_record("Running", request, alias), "checkMessageId": check}
    )
    log.info(
        "request %s: ARM is still working on '%s'; looked at again in %d s", request.request_id, request.name, delay
    )
    return "Running"


def _finish(app: Services, request: QueueRequest, alias: str | None, result: dict[str, Any]) -> str:
    """Store the result first (a redelivery then re-publishes it), then publish it."""
    fields = {**_record("Done", request, alias), "status": result["status"], "result": json.dumps(result)}
    app.work_store.replace(PARTITION, request.request_id, fields)
    app.queues.publish(result)
    return str(result["status"])


def _record(state: str, request: QueueRequest, alias: str | None = None) -> dict[str, Any]:
    return {
        "state": state,
        "action": request.action,
        "name": request.name,
        "kind": request.kind,
        "alias": alias or "",
        "updated": datetime.now(UTC),
    }


def _resolved_alias(app: Services, request: QueueRequest) -> str | None:
    try:
        if request.kind == "project":
            if request.action == "scale":
                raise Rejected(
                    "ScaleNotSupported",
                    "A serverless endpoint has no capacity to scale. Use 'scale' with 'account' for an Azure OpenAI "
                    "deployment; to change an endpoint, 'delete' it and 'deploy' it again.",
                )
            return app.settings.project(request.alias).alias
        return app.settings.account(request.alias).alias
    except (AccountNotFound, ProjectNotFound) as error:
        raise Rejected(error.code, error.message) from None


def _outcome(
    request: QueueRequest,
    alias: str | None,
    status: str,
    *,
    deployment: dict[str, Any] | None = None,
    error: ServiceError | None = None,
) -> dict[str, Any]:
    return {
        "requestId": request.request_id,
        "action": request.action,
        "name": request.name,
        request.kind: alias,
        "status": status,
        "deployment": deployment,
        "error": {"code": error.code, "message": error.message} if error is not None else None,
    }


def _rejected(
    rejected: Rejected, delivery: Delivery, request: QueueRequest | None = None, alias: str | None = None
) -> dict[str, Any]:
    seen = rejected.fields
    kind = request.kind if request else ("project" if "project" in seen else "account")
    return {
        "requestId": request.request_id if request else seen.get("requestId", delivery.message_id),
        "action": request.action if request else seen.get("action"),
        "name": request.name if request else seen.get("name"),
        kind: alias if request else seen.get(kind),
        "status": "Rejected",
        "deployment": None,
        "error": {"code": rejected.code, "message": rejected.message},
    }
