"""Deploy, scale, inspect and delete model deployments on the configured Azure OpenAI accounts.

Everything a caller sends is validated before any ARM call, so bad input changes nothing. Mutations on
one account run one at a time in this process (ARM refuses concurrent ones with 409 RequestConflict),
and a request whose desired state is already in place answers without touching ARM: an unchanged re-PUT
can fail with InsufficientQuota when the quota is full.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic import ValidationError as PydanticValidationError
from requests.structures import CaseInsensitiveDict

from .arm import ArmClient, ArmResponse
from .audit import AuditRecord, AuditTrail
from .errors import (
    ConflictError,
    DeploymentNotFound,
    ServiceError,
    UpstreamError,
    ValidationError,
)
from .identity import get_credential
from .lro import LongRunningOperation, PollOutcome
from .settings import Account, Settings, get_settings
from .web import parse_json_object, parse_wait

DEPLOYMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,63}$")
SKU_NAMES = (
    "Standard",
    "GlobalStandard",
    "DataZoneStandard",
    "DeveloperTier",
    "ProvisionedManaged",
    "GlobalProvisionedManaged",
    "DataZoneProvisionedManaged",
)
_SKU_BY_LOWER = {name.lower(): name for name in SKU_NAMES}
MAX_CAPACITY = 100_000
_Model = TypeVar("_Model", bound="BaseModel")

# Printable ASCII without spaces or '/': fine-tuned ids look like `gpt-4o-mini-2024-07-18.ft-0123abcd`,
# checkpoints like `ftchkpt-…` or `….ft-…:ckpt-step-10`.
ModelId = Annotated[str, StringConstraints(pattern=r"^[\x21-\x2e\x30-\x7e]{1,256}$")]
ShortText = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,64}$")]
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[^<>%&\\?/]+$")]
TagValue = Annotated[str, StringConstraints(max_length=256)]
Capacity = Annotated[int, Field(ge=1, le=MAX_CAPACITY)]
UpgradeOption = Literal["OnceNewDefaultVersionAvailable", "OnceCurrentVersionExpired", "NoAutoUpgrade"]

PUT_EXAMPLE = '{"model": "gpt-4o-mini-2024-07-18.ft-0123abcd", "sku": {"name": "Standard", "capacity": 1}}'
PATCH_EXAMPLE = '{"capacity": 40}'


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SkuRequest(_Strict):
    name: str | None = None
    capacity: Capacity | None = None

    @field_validator("name")
    @classmethod
    def _known_sku(cls, value: str | None) -> str | None:
        return None if value is None else canonical_sku(value)


class DeploymentRequest(_Strict):
    """Body of PUT /deployments/{name}."""

    model: ModelId
    version: ShortText | None = None
    format: ShortText | None = None
    sku: SkuRequest | None = None
    source: str | None = None
    raiPolicyName: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    versionUpgradeOption: UpgradeOption | None = None
    tags: Annotated[dict[TagKey, TagValue], Field(max_length=50)] | None = None


class ScaleRequest(_Strict):
    """Body of PATCH /deployments/{name}: a capacity, a sku, and/or tags."""

    capacity: Capacity | None = None
    sku: SkuRequest | None = None
    tags: Annotated[dict[TagKey, TagValue], Field(max_length=50)] | None = None


def canonical_sku(name: str) -> str:
    canonical = _SKU_BY_LOWER.get(name.lower())
    if canonical is None:
        raise ValueError(f"unknown SKU '{name}'; use one of {', '.join(SKU_NAMES)}")
    return canonical


@dataclass(frozen=True)
class DesiredDeployment:
    """What a deployment should look like, in ARM terms (source as an ARM account id)."""

    model_format: str
    model_name: str
    model_version: str
    model_source: str | None
    sku_name: str
    capacity: int
    rai_policy_name: str | None
    version_upgrade_option: str | None
    tags: dict[str, str] | None

    def arm_body(self) -> dict[str, Any]:
        model: dict[str, Any] = {"format": self.model_format, "name": self.model_name, "version": self.model_version}
        if self.model_source:
            model["source"] = self.model_source
        properties: dict[str, Any] = {"model": model}
        if self.rai_policy_name:
            properties["raiPolicyName"] = self.rai_policy_name
        if self.version_upgrade_option:
            properties["versionUpgradeOption"] = self.version_upgrade_option
        body: dict[str, Any] = {"sku": {"name": self.sku_name, "capacity": self.capacity}, "properties": properties}
        if self.tags is not None:
            body["tags"] = self.tags
        return body

    def same_model_as(self, current: CurrentDeployment) -> bool:
        return (
            self.model_format.lower() == current.model_format.lower()
            and self.model_name == current.model_name
            and self.model_version == current.model_version
            and (self.model_source or "").lower() == (current.model_source or "").lower()
        )

    def matches(self, current: CurrentDeployment) -> bool:
        return (
            self.same_model_as(current)
            and self.sku_name.lower() == current.sku_name.lower()
            and self.capacity == current.capacity
            and (self.rai_policy_name or current.rai_policy_name) == current.rai_policy_name
            and (self.version_upgrade_option or current.version_upgrade_option) == current.version_upgrade_option
            and (self.tags if self.tags is not None else current.tags) == current.tags
        )


@dataclass(frozen=True)
class CurrentDeployment:
    """The parts of an ARM deployment resource this service compares and reports."""

    resource: dict[str, Any]

    @property
    def _properties(self) -> dict[str, Any]:
        properties = self.resource.get("properties")
        return properties if isinstance(properties, dict) else {}

    @property
    def _model(self) -> dict[str, Any]:
        model = self._properties.get("model")
        return model if isinstance(model, dict) else {}

    @property
    def _sku(self) -> dict[str, Any]:
        sku = self.resource.get("sku")
        return sku if isinstance(sku, dict) else {}

    @property
    def model_format(self) -> str:
        return str(self._model.get("format") or "")

    @property
    def model_name(self) -> str:
        return str(self._model.get("name") or "")

    @property
    def model_version(self) -> str:
        return str(self._model.get("version") or "")

    @property
    def model_source(self) -> str | None:
        source = self._model.get("source") or self._model.get("sourceAccount")
        return str(source) if source else None

    @property
    def sku_name(self) -> str:
        return str(self._sku.get("name") or "")

    @property
    def capacity(self) -> int:
        return int(self._sku.get("capacity") or 0)

    @property
    def rai_policy_name(self) -> str | None:
        value = self._properties.get("raiPolicyName")
        return str(value) if value is not None else None

    @property
    def version_upgrade_option(self) -> str | None:
        value = self._properties.get("versionUpgradeOption")
        return str(value) if value is not None else None

    @property
    def tags(self) -> dict[str, str]:
        return dict(self.resource.get("tags") or {})

    @property
    def state(self) -> str:
        return str(self._properties.get("provisioningState") or "Succeeded")

    @property
    def in_progress(self) -> bool:
        return self.state.lower() not in ("succeeded", "failed", "canceled")


Outcome = Literal["created", "updated", "unchanged", "accepted", "deleted"]
_STATUS: dict[str, int] = {"created": 201, "updated": 200, "unchanged": 200, "accepted": 202, "deleted": 204}


@dataclass(frozen=True)
class OperationResult:
    """What a mutation came to. `location` is the path (under the route prefix) to poll while accepted."""

    outcome: Outcome
    deployment: dict[str, Any] | None = None
    location: str | None = None
    retry_after: int | None = None
    correlation_id: str | None = None

    @property
    def status(self) -> int:
        return _STATUS[self.outcome]


class DeploymentService:
    """The deployment operations over one ARM client and the configured accounts."""

    settings: Settings
    arm: ArmClient

    def __init__(self, settings: Settings, arm: ArmClient) -> None:
        self.settings = settings
        self.arm = arm
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # Reads

    def list_deployments(self, alias: str | None, *, request_id: str | None = None) -> list[dict[str, Any]]:
        account = self.settings.account(alias)
        items: list[dict[str, Any]] = []
        for page in self.arm.pages(self.arm.url(self._collection_path(account)), request_id=request_id):
            self._raise_for_status(page, account)
            items.extend(self.view(resource, account) for resource in page.body.get("value", []))
        return items

    def get(self, alias: str | None, name: str, *, request_id: str | None = None) -> dict[str, Any]:
        account = self.settings.account(alias)
        _check_name(name)
        current = self._current(account, name, request_id)
        if current is None:
            raise _not_found(account, name)
        return self.view(current.resource, account)

    # Mutations

    def put(
        self,
        alias: str | None,
        name: str,
        raw_body: bytes,
        *,
        wait: str | None = None,
        request_id: str | None = None,
        audit: AuditTrail | None = None,
        action: str | None = None,
        asked: dict[str, Any] | None = None,
    ) -> OperationResult:
        """Create or update; `action` and `asked` let deploy-from-job record itself as such in the audit trail."""
        account = self.settings.account(alias)
        _check_name(name)
        request = parse_model(DeploymentRequest, parse_json_object(raw_body, example=PUT_EXAMPLE))
        wait_seconds = parse_wait(wait, self.settings.arm.max_wait_seconds)
        source_id = self._source_id(request.source)
        deadline = self.arm.retry.clock() + wait_seconds
        summary = {**(asked or {}), **request.model_dump(exclude_none=True, exclude={"tags"})}
        with _audited(audit, action or "create", account, name, summary) as entry:
            result = self._put(account, name, request, source_id, deadline, request_id)
            if entry is not None and action is None and result.outcome != "created":
                entry.action = "update"
            return _noted(entry, result)

    def _put(
        self,
        account: Account,
        name: str,
        request: DeploymentRequest,
        source_id: str | None,
        deadline: float,
        request_id: str | None,
    ) -> OperationResult:
        with self._account_lock(account):
            current = self._current(account, name, request_id)
            desired = _desired(request, source_id, current)
            if current is not None:
                if not desired.same_model_as(current) and desired.capacity != current.capacity:
                    raise ValidationError(
                        f"Changing the model ({current.model_name} {current.model_version} -> {desired.model_name} "
                        f"{desired.model_version}) and the capacity ({current.capacity} -> {desired.capacity}) in one "
                        "request is refused by ARM. Do it in two steps: PUT the new model with the current capacity, "
                        "then PATCH the capacity.",
                        code="ModelAndCapacityChange",
                    )
                if desired.matches(current) and current.state.lower() != "failed":
                    return self._already(current, "PUT", account, name, deadline, request_id)
            response = self.arm.send(
                "PUT",
                self._resource_url(account, name),
                json=desired.arm_body(),
                request_id=request_id,
                retry_conflict=True,
            )
            self._raise_for_status(response, account, name)
            done: Outcome = "created" if response.status == 201 or current is None else "updated"
            return self._finish("PUT", account, name, response, deadline, done, request_id)

    def scale(
        self,
        alias: str | None,
        name: str,
        raw_body: bytes,
        *,
        wait: str | None = None,
        request_id: str | None = None,
        audit: AuditTrail | None = None,
    ) -> OperationResult:
        account = self.settings.account(alias)
        _check_name(name)
        request = parse_model(ScaleRequest, parse_json_object(raw_body, example=PATCH_EXAMPLE))
        if request.capacity is not None and request.sku is not None:
            raise ValidationError(
                'Send either capacity or sku, not both: {"capacity": 40} or '
                '{"sku": {"name": "GlobalStandard", "capacity": 40}}.',
                target="capacity",
            )
        if request.capacity is None and request.sku is None and request.tags is None:
            raise ValidationError(f"Nothing to change. Send for example {PATCH_EXAMPLE}.", code="MissingRequestBody")
        wait_seconds = parse_wait(wait, self.settings.arm.max_wait_seconds)
        deadline = self.arm.retry.clock() + wait_seconds
        with _audited(audit, "scale", account, name, request.model_dump(exclude_none=True)) as entry:
            return _noted(entry, self._scale(account, name, request, deadline, request_id))

    def _scale(
        self, account: Account, name: str, request: ScaleRequest, deadline: float, request_id: str | None
    ) -> OperationResult:
        with self._account_lock(account):
            current = self._current(account, name, request_id)
            if current is None:
                raise _not_found(account, name)
            sku_name = (request.sku.name if request.sku else None) or current.sku_name
            capacity = request.capacity or (request.sku.capacity if request.sku else None) or current.capacity
            tags = request.tags if request.tags is not None else current.tags
            if sku_name.lower() == current.sku_name.lower() and capacity == current.capacity and tags == current.tags:
                return self._already(current, "PATCH", account, name, deadline, request_id)
            if sku_name.lower() != current.sku_name.lower() or capacity != current.capacity:
                self._check_capacity(account, name, sku_name, capacity, request_id)
            patch: dict[str, Any] = {"sku": {"name": sku_name, "capacity": capacity}}
            if request.tags is not None:
                patch["tags"] = request.tags
            response = self.arm.send(
                "PATCH", self._resource_url(account, name), json=patch, request_id=request_id, retry_conflict=True
            )
            self._raise_for_status(response, account, name)
            return self._finish("PATCH", account, name, response, deadline, "updated", request_id)

    def delete(
        self,
        alias: str | None,
        name: str,
        *,
        wait: str | None = None,
        request_id: str | None = None,
        audit: AuditTrail | None = None,
    ) -> OperationResult:
        account = self.settings.account(alias)
        _check_name(name)
        wait_seconds = parse_wait(wait, self.settings.arm.max_wait_seconds)
        deadline = self.arm.retry.clock() + wait_seconds
        with _audited(audit, "delete", account, name, {}) as entry:
            return _noted(entry, self._delete(account, name, deadline, request_id))

    def _delete(self, account: Account, name: str, deadline: float, request_id: str | None) -> OperationResult:
        with self._account_lock(account):
            current = self._current(account, name, request_id)
            if current is None:
                return OperationResult("deleted")
            if current.state.lower() == "deleting":
                return self._already(current, "DELETE", account, name, deadline, request_id)
            response = self.arm.send(
                "DELETE", self._resource_url(account, name), request_id=request_id, retry_conflict=True
            )
            self._raise_for_status(response, account, name)
            return self._finish("DELETE", account, name, response, deadline, "deleted", request_id)

    # Views

    def view(self, resource: dict[str, Any], account: Account) -> dict[str, Any]:
        """The service's Deployment view of an ARM deployment resource."""
        current = CurrentDeployment(resource)
        model: dict[str, Any] = {
            "format": current.model_format,
            "name": current.model_name,
            "version": current.model_version,
        }
        if current.model_source:
            model["source"] = self._alias_for(str(current.model_source))
        view: dict[str, Any] = {
            "name": resource.get("name"),
            "account": account.alias,
            "model": model,
            "sku": {"name": current.sku_name, "capacity": current.capacity},
            "provisioningState": current.state,
            "raiPolicyName": current.rai_policy_name,
            "versionUpgradeOption": current.version_upgrade_option,
            "tags": current.tags,
        }
        rate_limits = resource.get("properties", {}).get("rateLimits")
        if rate_limits:
            view["rateLimits"] = rate_limits
        view["id"] = resource.get("id")
        return view

    # Internals

    def _already(
        self,
        current: CurrentDeployment,
        method: str,
        account: Account,
        name: str,
        deadline: float,
        request_id: str | None,
    ) -> OperationResult:
        """The asked-for state is in place, or on its way: no new ARM write; with ?wait, wait for it."""
        if not current.in_progress:
            return self._result("unchanged", account, name, current.resource)
        # Follow the resource itself, as the earlier request's own status links are not known here.
        running = ArmResponse(202, CaseInsensitiveDict(), current.resource, self._resource_url(account, name))
        return self._finish(method, account, name, running, deadline, "unchanged", request_id)

    def _finish(
        self,
        method: str,
        account: Account,
        name: str,
        response: ArmResponse,
        deadline: float,
        done: Outcome,
        request_id: str | None,
    ) -> OperationResult:
        operation = LongRunningOperation(self.arm, method, self._resource_url(account, name), response, request_id)
        outcome = operation.poll_until(deadline)
        if outcome.state.lower() in ("failed", "canceled"):
            raise _operation_failed(outcome, account, name, response.correlation_id)
        if outcome.terminal:
            if method == "DELETE":
                return OperationResult("deleted", correlation_id=response.correlation_id)
            return self._result(done, account, name, outcome.resource, response.correlation_id)
        # A DELETE still running answers 202 without a body, whichever request started it.
        resource = outcome.resource if method != "DELETE" else None
        if resource is None and method != "DELETE":
            current = self._current(account, name, request_id)
            resource = current.resource if current else None
        retry_after = math.ceil(outcome.retry_after or self.settings.arm.poll_interval_seconds)
        return self._result("accepted", account, name, resource, response.correlation_id, retry_after)

    def _result(
        self,
        outcome: Outcome,
        account: Account,
        name: str,
        resource: dict[str, Any] | None,
        correlation_id: str | None = None,
        retry_after: int | None = None,
    ) -> OperationResult:
        view = self.view(resource, account) if resource is not None else None
        if outcome != "accepted":
            return OperationResult(outcome, view, correlation_id=correlation_id)
        return OperationResult(
            "accepted",
            view,
            location=f"/deployments/{quote(name)}?account={quote(account.alias)}",
            retry_after=max(retry_after or math.ceil(self.settings.arm.poll_interval_seconds), 1),
            correlation_id=correlation_id,
        )

    def _current(self, account: Account, name: str, request_id: str | None) -> CurrentDeployment | None:
        response = self.arm.send("GET", self._resource_url(account, name), request_id=request_id)
        if response.status == 404 and _error_code(response) in ("DeploymentNotFound", "NotFound", ""):
            return None
        self._raise_for_status(response, account, name)
        return CurrentDeployment(response.body)

    def _check_capacity(
        self, account: Account, name: str, sku_name: str, capacity: int, request_id: str | None
    ) -> None:
        response = self.arm.send(
            "GET", self.arm.url(self._resource_path(account, name) + "/skus"), request_id=request_id
        )
        self._raise_for_status(response, account, name)
        rules = {
            str(item.get("sku", {}).get("name", "")).lower(): item.get("capacity") or {}
            for item in response.body.get("value", [])
            if isinstance(item, dict)
        }
        rule = rules.get(sku_name.lower())
        if rule is None:
            available = ", ".join(
                sorted(str(item.get("sku", {}).get("name")) for item in response.body.get("value", []))
            )
            raise ValidationError(
                f"SKU '{sku_name}' is not available for deployment '{name}'. Available: {available or 'none'}.",
                code="InvalidSku",
                target="sku.name",
            )
        problem = capacity_problem(capacity, rule)
        if problem:
            raise ValidationError(
                f"Capacity {capacity} is not allowed for SKU '{sku_name}' on deployment '{name}': {problem}.",
                code="InvalidCapacity",
                target="capacity",
            )

    def _raise_for_status(self, response: ArmResponse, account: Account, name: str | None = None) -> None:
        if response.status < 400:
            return
        error = response.error()
        code = str(error.get("code") or "UpstreamError")
        message = str(error.get("message") or f"ARM answered HTTP {response.status}.")
        if response.status == 404 and code in ("ResourceNotFound", "ResourceGroupNotFound", "SubscriptionNotFound"):
            message = (
                f"Account alias '{account.alias}' points at {account.arm_id}, which ARM did not find: {message} "
                "Check AZURE_OPENAI_ACCOUNTS."
            )
        elif response.status == 403:
            message = (
                f"{message} Grant the Function App's identity the 'Cognitive Services OpenAI Contributor' role "
                f"on {account.arm_id}."
            )
        headers = {}
        if response.headers.get("Retry-After"):
            headers["Retry-After"] = response.headers["Retry-After"]
        raise UpstreamError(
            message,
            code=code,
            status=response.status,
            target=error.get("target") if isinstance(error.get("target"), str) else None,
            headers=headers,
            correlation_id=response.correlation_id,
        )

    def _account_lock(self, account: Account) -> _TimedLock:
        with self._locks_guard:
            lock = self._locks.setdefault(account.alias, threading.Lock())
        return _TimedLock(lock, self.settings.arm.conflict_retry_seconds, account)

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

    def _alias_for(self, arm_id: str) -> str:
        for alias, account in self.settings.accounts.items():
            if account.arm_id.lower() == arm_id.lower():
                return alias
        return arm_id

    def _collection_path(self, account: Account) -> str:
        return f"{account.arm_id}/deployments"

    def _resource_path(self, account: Account, name: str) -> str:
        return f"{account.arm_id}/deployments/{quote(name)}"

    def _resource_url(self, account: Account, name: str) -> str:
        return self.arm.url(self._resource_path(account, name))


@contextmanager
def _audited(
    audit: AuditTrail | None, action: str, account: Account, name: str, asked: dict[str, Any]
) -> Iterator[AuditRecord | None]:
    """The audit record of a mutation (written before any ARM call), or nothing when not audited."""
    if audit is None:
        yield None
        return
    with audit.record(action, account.alias, name, asked) as entry:
        yield entry


def _noted(entry: AuditRecord | None, result: OperationResult) -> OperationResult:
    """Put what the caller is about to get into the audit record."""
    if entry is not None:
        state = result.deployment.get("provisioningState") if result.deployment else None
        entry.outcome = {"status": result.status, "provisioningState": state, "code": None}
        entry.arm_correlation_id = result.correlation_id
    return result


class _TimedLock:
    """The per-account mutation lock; a request that cannot get it in time answers 409 with Retry-After."""

    def __init__(self, lock: threading.Lock, timeout: float, account: Account) -> None:
        self._lock = lock
        self._timeout = timeout
        self._account = account

    def __enter__(self) -> None:
        if not self._lock.acquire(timeout=self._timeout):
            raise ConflictError(
                f"Another change to account '{self._account.alias}' is still running in this service. "
                "Try again when it has finished.",
                headers={"Retry-After": "10"},
            )

    def __exit__(self, *_: object) -> None:
        self._lock.release()


def capacity_problem(capacity: int, rule: dict[str, Any]) -> str | None:
    """Why `capacity` breaks an ARM ListSkus capacity rule, or None when it is allowed."""
    allowed = [int(value) for value in rule.get("allowedValues") or []]
    if allowed:
        return None if capacity in allowed else f"allowed values are {', '.join(map(str, allowed))}"
    minimum = rule.get("minimum")
    maximum = rule.get("maximum")
    step = rule.get("step")
    if minimum is not None and capacity < int(minimum):
        return f"the minimum is {minimum}" + (f", in steps of {step}" if step and int(step) > 1 else "")
    if maximum is not None and capacity > int(maximum):
        return f"the maximum is {maximum}"
    if step and int(step) > 1 and (capacity - int(minimum or 0)) % int(step) != 0:
        start = int(minimum or 0)
        examples = ", ".join(str(start + n * int(step)) for n in range(3))
        return f"capacity goes in steps of {step} from {start} (e.g. {examples})"
    return None


def _desired(request: DeploymentRequest, source_id: str | None, current: CurrentDeployment | None) -> DesiredDeployment:
    """The full desired state: the request, then the current deployment's values, then creation defaults."""
    same_model = current is not None and request.model == current.model_name
    sku = request.sku or SkuRequest()
    return DesiredDeployment(
        model_format=request.format or (current.model_format if current else "") or "OpenAI",
        model_name=request.model,
        model_version=request.version or (current.model_version if same_model and current else "") or "1",
        model_source=source_id,
        sku_name=sku.name or (current.sku_name if current else "") or "Standard",
        capacity=sku.capacity or (current.capacity if current else 0) or 1,
        rai_policy_name=request.raiPolicyName,
        version_upgrade_option=request.versionUpgradeOption,
        tags=request.tags,
    )


def parse_model(model: type[_Model], data: dict[str, Any]) -> _Model:
    try:
        return model.model_validate(data)
    except PydanticValidationError as error:
        raise _validation_error(error, model) from None


def _validation_error(error: PydanticValidationError, model: type[BaseModel]) -> ValidationError:
    first = error.errors(include_url=False)[0]
    location = ".".join(str(part) for part in first["loc"])
    kind = first["type"]
    if kind == "extra_forbidden":
        allowed = ", ".join(model.model_fields)
        message = f"Unknown field '{location}'. Allowed fields: {allowed}."
        return ValidationError(message, code="UnknownField", target=location)
    if kind == "missing":
        return ValidationError(f"'{location}' is required.", code="MissingField", target=location)
    detail = str(first.get("msg", "invalid value"))
    if detail.startswith("Value error, "):
        detail = detail[len("Value error, ") :]
    if kind == "string_pattern_mismatch" and location == "model":
        detail = "a model id is printable ASCII with no spaces or '/', e.g. gpt-4o-mini-2024-07-18.ft-0123abcd"
    return ValidationError(f"Invalid '{location}': {detail}.", code="InvalidField", target=location)


def _check_name(name: str) -> None:
    if not DEPLOYMENT_NAME.fullmatch(name):
        raise ValidationError(
            f"Deployment name '{name[:80]}' is not valid: use 2-64 letters, digits, '-', '_' or '.', "
            "starting with a letter or digit.",
            code="InvalidDeploymentName",
            target="name",
        )


def _not_found(account: Account, name: str) -> DeploymentNotFound:
    return DeploymentNotFound(
        f"Deployment '{name}' does not exist in account '{account.alias}'. GET /api/deployments lists the "
        "deployments; a fine-tuned deployment left idle for 15 days is removed by Azure.",
        target="name",
    )


def _error_code(response: ArmResponse) -> str:
    return str(response.error().get("code") or "") if response.body else ""


def _operation_failed(outcome: PollOutcome, account: Account, name: str, correlation_id: str | None) -> ServiceError:
    error = outcome.error or {}
    return UpstreamError(
        f"The operation on deployment '{name}' in account '{account.alias}' ended {outcome.state}: "
        f"{error.get('message', 'ARM gave no reason')}. Fix the cause, then PUT again or DELETE the deployment.",
        code=str(error.get("code") or "DeploymentFailed"),
        status=500,
        correlation_id=correlation_id,
    )


_service_lock = threading.Lock()
_service: DeploymentService | None = None


def get_service() -> DeploymentService:
    """The process-wide service: settings, the credential and the ARM pipeline made once."""
    global _service
    if _service is None:
        with _service_lock:
            if _service is None:
                settings = get_settings()
                arm = ArmClient(
                    settings.arm_endpoint,
                    settings.arm_api_version,
                    get_credential(),
                    settings.arm_scope,
                    tuning=settings.arm,
                )
                _service = DeploymentService(settings, arm)
    return _service
