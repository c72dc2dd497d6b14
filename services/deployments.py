"""Deploy, scale, inspect and delete model deployments on the configured Azure OpenAI accounts.

Everything a caller sends is validated before any ARM call, so bad input changes nothing. Mutations on
one account run one at a time in this process (ARM refuses concurrent ones with 409 RequestConflict),
and a request whose desired state is already in place answers without an ARM write: an unchanged re-PUT
can fail with InsufficientQuota when the quota is full.

The three mutations share one path (`_mutate`): find the account, check the name and `?wait`, open the
audit record, take the account's lock, then run their own step, which reads the deployment, decides, and
writes to ARM at most once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .arm import ArmClient, ArmFor, ArmResponse
from .arm_errors import raise_for_status
from .audit import AuditRecord, AuditTrail
from .capacity import check_capacity
from .deployment_requests import DeploymentRequest, ScaleRequest, check_name, parse_patch, parse_put
from .deployment_state import CurrentDeployment, desired_state
from .deployment_view import deployment_view, not_found
from .errors import Conflict, DeploymentNotFound, ServiceError, UpstreamError, ValidationError
from .lifecycle_tags import TagChanges, with_changes
from .locks import KeyedLocks
from .lro import PollOutcome
from .mutation import Follow, finish, follow_running, run_change
from .results import OperationResult, Outcome
from .settings import Account, Settings
from .tenants import SourceLink, TokensFor, source_link, tenant_of
from .web import RawBody, parse_wait

_NOT_FOUND_CODES = ("DeploymentNotFound", "NotFound")  # ResourceNotFound: the account itself is missing


@dataclass
class _Change:
    """One mutation in progress: where, until when a caller waits, and what the audit record should say."""

    account: Account
    name: str
    deadline: float
    request_id: str | None
    entry: AuditRecord | None
    wrote: bool = False
    link: SourceLink | None = None

    def call_it(self, action: str) -> None:
        """Name the action in the audit record once it is known (a PUT that creates, or one that updates)."""
        if self.entry is not None:
            self.entry.action = action


class DeploymentService:
    """The deployment operations over the ARM clients (`arm_for`: one per tenant) and the configured accounts."""

    def __init__(
        self, settings: Settings, arm: ArmClient, *, arm_for: ArmFor | None = None, tokens_for: TokensFor | None = None
    ) -> None:
        self.settings = settings
        self.arm = arm
        self.arm_of = arm_for or (lambda _: arm)
        self._tokens_for = tokens_for
        self._locks = KeyedLocks(settings.arm.conflict_retry_seconds)

    # Reads

    def list_deployments(self, alias: str | None, *, request_id: str | None = None) -> list[dict[str, Any]]:
        account = self.settings.account(alias)
        arm = self.arm_of(account)
        items: list[dict[str, Any]] = []
        for page in arm.pages(arm.url(f"{account.arm_id}/deployments"), request_id=request_id):
            raise_for_status(page, account)
            items.extend(self.view(resource, account) for resource in page.body.get("value", []))
        return items

    def get(self, alias: str | None, name: str, *, request_id: str | None = None) -> dict[str, Any]:
        account = self.settings.account(alias)
        check_name(name)
        current = self._current(account, name, request_id)
        if current is None:
            raise not_found(account, name)
        return self.view(current.resource, account)

    # Mutations

    def put(
        self,
        alias: str | None,
        name: str,
        raw_body: RawBody | dict[str, Any],
        *,
        wait: str | None = None,
        request_id: str | None = None,
        audit: AuditTrail | None = None,
        action: str | None = None,
        asked: dict[str, Any] | None = None,
    ) -> OperationResult:
        """Create or update; `action` and `asked` let deploy-from-job record itself as such in the audit trail."""
        account = self._target(alias, name)
        request = parse_put(raw_body)
        source_id = self._source_id(request.source)
        lifecycle = request.lifecycle()
        summary = {**(asked or {}), **request.model_dump(mode="json", exclude_none=True, exclude={"tags"})}

        def step(change: _Change) -> OperationResult:
            return self._put(change, request, source_id, lifecycle, keep_action=action is not None)

        return self._mutate(account, name, wait, request_id, audit, action or "create", summary, step)

    def scale(
        self,
        alias: str | None,
        name: str,
        raw_body: RawBody | dict[str, Any],
        *,
        wait: str | None = None,
        request_id: str | None = None,
        audit: AuditTrail | None = None,
    ) -> OperationResult:
        account = self._target(alias, name)
        request = parse_patch(raw_body)
        lifecycle = request.lifecycle()
        summary = request.model_dump(mode="json", exclude_none=True, exclude={"tags"})  # as for PUT: tags can be large
        return self._mutate(
            account,
            name,
            wait,
            request_id,
            audit,
            "scale",
            summary,
            lambda change: self._scale(change, request, lifecycle),
        )

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
        account = self._target(alias, name)
        return self._mutate(account, name, wait, request_id, audit, action, asked or {}, self._delete)

    def _target(self, alias: str | None, name: str) -> Account:
        account = self.settings.account(alias)
        check_name(name)
        self.arm_of(account)  # a cross-tenant setting missing is refused before anything is recorded
        return account

    def _mutate(
        self,
        account: Account,
        name: str,
        wait: str | None,
        request_id: str | None,
        audit: AuditTrail | None,
        action: str,
        asked: dict[str, Any],
        step: Callable[[_Change], OperationResult],
    ) -> OperationResult:
        deadline = self.arm.clock() + parse_wait(wait, self.settings.arm.max_wait_seconds)

        def make(entry: AuditRecord | None) -> _Change:
            if entry is not None:
                entry.target_tenant = tenant_of(self.settings, account)
            return _Change(account, name, deadline, request_id, entry)

        record = audit.record(action, account.alias, name, asked) if audit is not None else None
        return run_change(self._locks, account.alias, record, make, step)

    def _put(
        self,
        change: _Change,
        request: DeploymentRequest,
        source_id: str | None,
        lifecycle: TagChanges,
        *,
        keep_action: bool,
    ) -> OperationResult:
        current = self._current(change.account, change.name, change.request_id)
        if lifecycle:
            tags = request.tags if request.tags is not None else (current.tags if current is not None else None)
            request = request.model_copy(update={"tags": with_changes(tags, lifecycle)})
        if not keep_action:
            change.call_it("create" if current is None else "update")
        desired = desired_state(request, source_id, current)
        change.link = source_link(self.settings, change.account, desired.model_source, self._tokens_for)
        if change.link is not None and change.entry is not None:
            change.entry.source_tenant, change.entry.target_tenant = (
                change.link.source_tenant,
                change.link.target_tenant,
            )
        if current is not None:
            _refuse_while_deleting(current, change)
            if not desired.same_model_as(current) and desired.capacity != current.capacity:
                raise ValidationError(
                    f"Changing the model ({current.model_name} {current.model_version} -> {desired.model_name} "
                    f"{desired.model_version}) and the capacity ({current.capacity} -> {desired.capacity}) in one "
                    "request is refused by ARM. Do it in two steps: PUT the new model with the current capacity, "
                    "then PATCH the capacity.",
                    code="ModelAndCapacityChange",
                )
            if desired.matches(current) and current.state.lower() != "failed":
                return self._already(change, current, "PUT")
        response = self._write(change, "PUT", desired.arm_body("sourceAccount" if change.link else "source"))
        created = current is None or response.status == 201
        if created and not keep_action:
            change.call_it("create")
        return self._finish(change, "PUT", response, "created" if created else "updated")

    def _scale(self, change: _Change, request: ScaleRequest, lifecycle: TagChanges) -> OperationResult:
        current = self._current(change.account, change.name, change.request_id)
        if current is None:
            raise not_found(change.account, change.name)
        _refuse_while_deleting(current, change)
        sku_name = (request.sku.name if request.sku else None) or current.sku_name
        capacity = request.capacity or (request.sku.capacity if request.sku else None) or current.capacity
        tags = with_changes(request.tags if request.tags is not None else current.tags, lifecycle) or {}
        if sku_name.lower() == current.sku_name.lower() and capacity == current.capacity and tags == current.tags:
            return self._already(change, current, "PATCH")
        if sku_name.lower() != current.sku_name.lower() or capacity != current.capacity:
            url = self._url(change.account, change.name, "/skus")
            skus = self.arm_of(change.account).send("GET", url, request_id=change.request_id)
            raise_for_status(skus, change.account)
            check_capacity(skus.body, change.name, sku_name, capacity)
        patch: dict[str, Any] = {"sku": {"name": sku_name, "capacity": capacity}}
        if request.tags is not None or lifecycle:
            patch["tags"] = tags
        return self._finish(change, "PATCH", self._write(change, "PATCH", patch), "updated")

    def _delete(self, change: _Change) -> OperationResult:
        current = self._current(change.account, change.name, change.request_id)
        if current is None:
            return OperationResult("deleted")
        if current.state.lower() == "deleting":
            return self._already(change, current, "DELETE")
        return self._finish(change, "DELETE", self._write(change, "DELETE"), "deleted")

    # Views

    def view(self, resource: dict[str, Any], account: Account) -> dict[str, Any]:
        """The service's Deployment view of an ARM deployment resource."""
        return deployment_view(resource, account, self.settings.accounts)

    # Internals

    def _write(self, change: _Change, method: str, body: dict[str, Any] | None = None) -> ArmResponse:
        """The one ARM write of a mutation (409 RequestConflict retried until its deadline)."""
        auxiliary = change.link.auxiliary() if change.link else ()  # a refused exchange stops here: nothing sent
        change.wrote = True
        url = self._url(change.account, change.name)
        response = self.arm_of(change.account).send(
            method, url, json=body, request_id=change.request_id, retry_conflict=True, auxiliary=auxiliary
        )
        raise_for_status(response, change.account, linked=change.link.linked if change.link else None)
        return response

    def _already(self, change: _Change, current: CurrentDeployment, method: str) -> OperationResult:
        """The asked-for state is in place, or on its way: no new ARM write; with ?wait, wait for it."""
        if not current.in_progress:
            return self._result("unchanged", change, current.resource)
        return follow_running(self._follow(change, method), method, current.resource)

    def _finish(self, change: _Change, method: str, response: ArmResponse, done: Outcome) -> OperationResult:
        return finish(self._follow(change, method), method, response, done)

    def _follow(self, change: _Change, method: str) -> Follow:
        def current() -> dict[str, Any] | None:
            found = self._current(change.account, change.name, change.request_id)
            return found.resource if found is not None else None

        return Follow(
            arm=self.arm_of(change.account),
            url=self._url(change.account, change.name),
            request_id=change.request_id,
            deadline=change.deadline,
            poll_interval=self.settings.arm.poll_interval_seconds,
            current=current,
            failed=lambda outcome, correlation_id: _operation_failed(outcome, change, method, correlation_id),
            gone=lambda correlation_id: _deleted_meanwhile(change, correlation_id),
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
        view = self.view(resource, change.account) if resource is not None else None
        if outcome != "accepted":
            return OperationResult(outcome, view, correlation_id=correlation_id)
        return OperationResult(
            "accepted",
            view,
            location=f"/deployments/{quote(change.name)}?account={quote(change.account.alias)}",
            retry_after=max(retry_after or math.ceil(self.settings.arm.poll_interval_seconds), 1),
            correlation_id=correlation_id,
        )

    def _current(self, account: Account, name: str, request_id: str | None) -> CurrentDeployment | None:
        response = self.arm_of(account).send("GET", self._url(account, name), request_id=request_id)
        if response.status == 404 and _error_code(response) in (*_NOT_FOUND_CODES, ""):
            return None
        raise_for_status(response, account)
        return CurrentDeployment(response.body)

    def _source_id(self, source: str | None) -> str | None:
        if source is None:
            return None
        if source not in self.settings.accounts:
            known = ", ".join(sorted(self.settings.accounts))
            raise ValidationError(
                f"source '{source}' is not a configured account alias. Use one of: {known}.",
                code="InvalidSource",
                target="source",
            )
        return self.settings.accounts[source].arm_id

    def _url(self, account: Account, name: str, suffix: str = "") -> str:
        return self.arm_of(account).url(f"{account.arm_id}/deployments/{quote(name)}{suffix}")


def _refuse_while_deleting(current: CurrentDeployment, change: _Change) -> None:
    if current.state.lower() == "deleting":
        raise Conflict(
            f"Deployment '{change.name}' in account '{change.account.alias}' is being deleted by another request. "
            "Wait until GET answers 404, then PUT it again.",
            code="DeploymentBeingDeleted",
            target="name",
            headers={"Retry-After": "10"},
        )


def _deleted_meanwhile(change: _Change, correlation_id: str | None) -> DeploymentNotFound:
    return DeploymentNotFound(
        f"Deployment '{change.name}' in account '{change.account.alias}' was deleted by another request while "
        "this change was in progress. PUT it again to recreate it.",
        target="name",
        correlation_id=correlation_id,
    )


def _error_code(response: ArmResponse) -> str:
    return str(response.error().get("code") or "") if response.body else ""


def _operation_failed(outcome: PollOutcome, change: _Change, method: str, correlation_id: str | None) -> ServiceError:
    error = outcome.error or {}
    code = str(error.get("code") or "DeploymentFailed")
    if method != "DELETE" and code in _NOT_FOUND_CODES:
        return _deleted_meanwhile(change, correlation_id)
    return UpstreamError(
        f"The operation on deployment '{change.name}' in account '{change.account.alias}' ended {outcome.state}: "
        f"{error.get('message', 'ARM gave no reason')}. Fix the cause, then PUT again or DELETE the deployment.",
        code=code,
        status=500,
        correlation_id=correlation_id,
    )
