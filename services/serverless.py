"""Deploy, inspect and delete serverless endpoints of the configured Foundry projects (Azure ML workspaces).

The same contract as model deployments: everything a caller sends is checked before ARM is called; mutations on
one project run one at a time in this process; a request whose state is already in place answers without an ARM
write; `?wait=N` waits for a terminal state, else 202 with `Location` and `Retry-After`. A model is named by
the caller as registered in the project; the full id (with the workspace's GUID) is built here. A partner model's
marketplace subscription is ensured before the endpoint is created. Keys never leave this module's callers:
`primary_key` is for the inference side only, and nothing here logs or returns it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .arm import ArmClient, ArmResponse
from .audit import AuditRecord, AuditTrail
from .errors import Conflict, EndpointNotFound, ModelChangeNotSupported, ServiceError, UpstreamError
from .foundry_models import (
    MISSING_RESOURCE_CODES,
    Workspace,
    ensure_subscription,
    list_subscriptions,
    marketplace_model,
    ml_url,
    partner_model,
    raise_for_project,
    read_workspace,
    resolve_model,
)
from .locks import KeyedLocks
from .lro import PollOutcome
from .mutation import Follow, finish, follow_running, run_change
from .projects import Project
from .results import OperationResult, Outcome
from .serverless_requests import EndpointRequest, check_endpoint_name, parse_endpoint_put
from .settings import Settings
from .web import RawBody, parse_wait

ProjectArm = Callable[[Project], ArmClient]


@dataclass
class _Change:
    project: Project
    name: str
    deadline: float
    request_id: str | None
    entry: AuditRecord | None
    wrote: bool = False


class ServerlessService:
    """Serverless endpoint operations over the ARM clients (`arm_for`: one per tenant) and the configured projects."""

    def __init__(self, settings: Settings, arm_for: ProjectArm) -> None:
        self.settings = settings
        self.arm_of = arm_for
        self.api_version = settings.ml_arm_api_version
        self._locks = KeyedLocks(settings.arm.conflict_retry_seconds)
        self._workspaces: dict[str, Workspace] = {}  # per project alias: its location and GUID never change

    # Reads

    def list_endpoints(self, alias: str | None, *, request_id: str | None = None) -> list[dict[str, Any]]:
        project = self.settings.project(alias)
        arm = self.arm_of(project)
        resources: list[dict[str, Any]] = []
        for page in arm.pages(self._url(project, ""), request_id=request_id):
            raise_for_project(page, project)
            resources.extend(item for item in page.body.get("value", []) if isinstance(item, dict))
        statuses = self._subscription_statuses(project, resources, request_id)
        return [self.view(resource, project, statuses) for resource in resources]

    def get(self, alias: str | None, name: str, *, request_id: str | None = None) -> dict[str, Any]:
        project = self.settings.project(alias)
        check_endpoint_name(name)
        current = self.current(project, name, request_id)
        if current is None:
            raise endpoint_not_found(project, name)
        return self.view(current, project, self._subscription_statuses(project, [current], request_id))

    def current(self, project: Project, name: str, request_id: str | None) -> dict[str, Any] | None:
        """The endpoint's ARM resource, or None when it does not exist."""
        response = self.arm_of(project).send("GET", self._url(project, name), request_id=request_id)
        if response.status == 404 and _error_code(response) not in MISSING_RESOURCE_CODES:
            return None
        raise_for_project(response, project)
        return response.body if isinstance(response.body, dict) else None

    def primary_key(self, project: Project, name: str, request_id: str | None) -> str:
        """The endpoint's key from listKeys, for the inference side only: never logged, returned or stored."""
        response = self.arm_of(project).send("POST", self._url(project, name, "/listKeys"), request_id=request_id)
        if response.status == 404:
            raise endpoint_not_found(project, name)
        raise_for_project(response, project)
        key = response.body.get("primaryKey") if isinstance(response.body, dict) else None
        if not isinstance(key, str) or not key:
            raise UpstreamError(f"listKeys of endpoint '{name}' in project '{project.alias}' gave no primaryKey.")
        return key

    # Mutations

    def put(
        self,
        alias: str | None,
        name: str,
        body: RawBody | dict[str, Any],
        *,
        wait: str | None = None,
        request_id: str | None = None,
        audit: AuditTrail | None = None,
    ) -> OperationResult:
        project = self._target(alias, name)
        request = parse_endpoint_put(body)
        asked = request.model_dump(exclude_none=True, exclude={"tags"})
        return self._mutate(project, name, wait, request_id, audit, "create", asked, lambda c: self._put(c, request))

    def delete(
        self,
        alias: str | None,
        name: str,
        *,
        wait: str | None = None,
        request_id: str | None = None,
        audit: AuditTrail | None = None,
        action: str = "delete",
        asked: dict[str, Any] | None = None,
    ) -> OperationResult:
        """`action` and `asked` let the sweep record an expiry as such in the audit trail."""
        project = self._target(alias, name)
        return self._mutate(project, name, wait, request_id, audit, action, asked or {}, self._delete)

    def _target(self, alias: str | None, name: str) -> Project:
        project = self.settings.project(alias)
        check_endpoint_name(name)
        self.arm_of(project)  # a cross-tenant setting missing is refused before anything is recorded
        return project

    def _mutate(
        self,
        project: Project,
        name: str,
        wait: str | None,
        request_id: str | None,
        audit: AuditTrail | None,
        action: str,
        asked: dict[str, Any],
        step: Callable[[_Change], OperationResult],
    ) -> OperationResult:
        arm = self.arm_of(project)
        deadline = arm.clock() + parse_wait(wait, self.settings.arm.max_wait_seconds)
        record = audit.record(action, "", name, asked, project=project.alias) if audit is not None else None
        return run_change(
            self._locks,
            f"project:{project.alias}",
            record,
            lambda entry: _Change(project, name, deadline, request_id, entry),
            step,
        )

    def _put(self, change: _Change, request: EndpointRequest) -> OperationResult:
        project, arm = change.project, self.arm_of(change.project)
        current = self.current(project, change.name, change.request_id)
        if change.entry is not None:
            change.entry.action = "create" if current is None else "update"
        workspace = self._workspace(project, change.request_id)
        model_id = resolve_model(arm, project, workspace, request.model, self.api_version, change.request_id)
        if current is not None:
            properties = _properties(current)
            if str(properties.get("provisioningState", "")).lower() == "deleting":
                raise _being_deleted(change)
            current_model = str((properties.get("modelSettings") or {}).get("modelId", ""))
            if current_model.lower() != model_id.lower():
                raise ModelChangeNotSupported(
                    f"Endpoint '{change.name}' in project '{project.alias}' serves {current_model}; a serverless "
                    f"endpoint's model cannot change (asked: {model_id}). DELETE the endpoint, then PUT it again "
                    "with the new model.",
                    target="model",
                )
        safety = request.contentSafety or (_content_safety(current) if current is not None else "Enabled")
        tags = dict(request.tags if request.tags is not None else (current or {}).get("tags") or {})
        for tag, value in request.lifecycle().items():  # expiresAt / ttlHours / keepAlive, kept as tags
            if value is None:
                tags.pop(tag, None)
            else:
                tags[tag] = value
        unchanged = current is not None and safety == _content_safety(current) and tags == (current.get("tags") or {})
        if current is not None and unchanged and str(_properties(current).get("provisioningState")) != "Failed":
            return self._already(change, current, "PUT")
        partner = partner_model(model_id) or (
            marketplace_model(request.marketplaceModel) if request.marketplaceModel else None
        )
        if partner is not None and current is None:
            subscription_deadline = max(change.deadline, arm.clock() + 60)
            _, created = ensure_subscription(
                arm, project, partner, self.api_version, change.request_id, subscription_deadline
            )
            change.wrote = change.wrote or created
        body = {
            "location": workspace.location,
            "sku": {"name": "Consumption"},
            "tags": tags,
            "properties": {
                "modelSettings": {"modelId": model_id},
                "authMode": "Key",
                "contentSafety": {"contentSafetyStatus": safety},
            },
        }
        response = self._write(change, "PUT", body)
        created = current is None or response.status == 201
        return self._finish(change, "PUT", response, "created" if created else "updated")

    def _delete(self, change: _Change) -> OperationResult:
        current = self.current(change.project, change.name, change.request_id)
        if current is None:
            return OperationResult("deleted")
        if str(_properties(current).get("provisioningState", "")).lower() == "deleting":
            return self._already(change, current, "DELETE")
        return self._finish(change, "DELETE", self._write(change, "DELETE"), "deleted")

    # Views

    def view(
        self, resource: dict[str, Any], project: Project, statuses: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """The service's Endpoint view of an ARM serverless endpoint. Never a key."""
        properties = _properties(resource)
        inference = _properties({"properties": properties.get("inferenceEndpoint")})
        view: dict[str, Any] = {
            "name": resource.get("name"),
            "project": project.alias,
            "id": resource.get("id"),
            "model": (properties.get("modelSettings") or {}).get("modelId"),
            "provisioningState": properties.get("provisioningState"),
            "endpointState": properties.get("endpointState"),
            "inferenceUri": inference.get("uri"),
            "contentSafety": _content_safety(resource),
            "tags": resource.get("tags") or {},
        }
        subscription = properties.get("marketplaceSubscriptionId")
        if isinstance(subscription, str) and subscription:
            view["marketplaceSubscription"] = {
                "id": subscription,
                "status": (statuses or {}).get(subscription.lower()),
            }
        system = resource.get("systemData")
        if isinstance(system, dict) and system.get("createdAt"):
            view["createdAt"] = system["createdAt"]
        return view

    # Internals

    def _workspace(self, project: Project, request_id: str | None) -> Workspace:
        workspace = self._workspaces.get(project.alias)
        if workspace is None:
            workspace = read_workspace(self.arm_of(project), project, self.api_version, request_id)
            self._workspaces[project.alias] = workspace
        return workspace

    def _subscription_statuses(
        self, project: Project, resources: list[dict[str, Any]], request_id: str | None
    ) -> dict[str, str]:
        if not any(_properties(resource).get("marketplaceSubscriptionId") for resource in resources):
            return {}
        found = list_subscriptions(self.arm_of(project), project, self.api_version, request_id)
        return {
            str(item.get("id", "")).lower(): str(_properties(item).get("marketplaceSubscriptionStatus") or "")
            for item in found
        }

    def _write(self, change: _Change, method: str, body: dict[str, Any] | None = None) -> ArmResponse:
        change.wrote = True
        response = self.arm_of(change.project).send(
            method, self._url(change.project, change.name), json=body, request_id=change.request_id, retry_conflict=True
        )
        raise_for_project(response, change.project)
        return response

    def _already(self, change: _Change, current: dict[str, Any], method: str) -> OperationResult:
        state = str(_properties(current).get("provisioningState", "")).lower()
        if state in ("succeeded", "failed", "canceled"):
            return self._result("unchanged", change, current)
        return follow_running(self._follow(change), method, current)

    def _finish(self, change: _Change, method: str, response: ArmResponse, done: Outcome) -> OperationResult:
        return finish(self._follow(change), method, response, done)

    def _follow(self, change: _Change) -> Follow:
        project, name = change.project, change.name

        def failed(outcome: PollOutcome, correlation_id: str | None) -> ServiceError:
            error = outcome.error or {}
            return UpstreamError(
                f"The operation on endpoint '{name}' in project '{project.alias}' ended {outcome.state}: "
                f"{error.get('message', 'ARM gave no reason')}. Fix the cause, then PUT again or DELETE the endpoint.",
                code=str(error.get("code") or "EndpointOperationFailed"),
                status=500,
                correlation_id=correlation_id,
            )

        return Follow(
            arm=self.arm_of(project),
            url=self._url(project, name),
            request_id=change.request_id,
            deadline=change.deadline,
            poll_interval=self.settings.arm.poll_interval_seconds,
            current=lambda: self.current(project, name, change.request_id),
            failed=failed,
            gone=lambda _correlation_id: endpoint_not_found(project, name),
            result=lambda outcome, resource, correlation_id, retry_after: self._result(
                outcome, change, resource, correlation_id, retry_after
            ),
        )

    def _result(
        self,
        outcome: Outcome,
        change: _Change,
        resource: dict[str, Any] | None,
        correlation_id: str | None = None,
        retry_after: int | None = None,
    ) -> OperationResult:
        view = None
        if resource is not None:
            statuses = self._subscription_statuses(change.project, [resource], change.request_id)
            view = self.view(resource, change.project, statuses)
        if outcome != "accepted":
            return OperationResult(outcome, view, correlation_id=correlation_id)
        return OperationResult(
            "accepted",
            view,
            location=f"/serverless-endpoints/{quote(change.name)}?project={quote(change.project.alias)}",
            retry_after=max(retry_after or 1, 1),
            correlation_id=correlation_id,
        )

    def _url(self, project: Project, name: str, suffix: str = "") -> str:
        path = f"{project.arm_id}/serverlessEndpoints" + (f"/{quote(name)}" if name else "") + suffix
        return ml_url(self.arm_of(project), path, self.api_version)


def _properties(resource: dict[str, Any]) -> dict[str, Any]:
    properties = resource.get("properties")
    return properties if isinstance(properties, dict) else {}


def _content_safety(resource: dict[str, Any] | None) -> str:
    safety = _properties(resource or {}).get("contentSafety")
    status = safety.get("contentSafetyStatus") if isinstance(safety, dict) else None
    return "Disabled" if str(status).lower() == "disabled" else "Enabled"


def _error_code(response: ArmResponse) -> str:
    return str(response.error().get("code") or "") if response.body else ""


def endpoint_not_found(project: Project, name: str) -> EndpointNotFound:
    return EndpointNotFound(
        f"Serverless endpoint '{name}' does not exist in project '{project.alias}'. GET /api/serverless-endpoints "
        "lists them; an endpoint left idle for 15 days is removed by Azure.",
        target="name",
    )


def _being_deleted(change: _Change) -> Conflict:
    return Conflict(
        f"Serverless endpoint '{change.name}' in project '{change.project.alias}' is being deleted. Wait until GET "
        "answers 404, then PUT it again.",
        code="EndpointBeingDeleted",
        target="name",
        headers={"Retry-After": "10"},
    )
