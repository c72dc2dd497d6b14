"""ARM front door and the `Microsoft.CognitiveServices/accounts/deployments` resource provider."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .arm_tenants import check_linked_source, check_token_tenant
from .errors import ArmError
from .identity import TokenRejected
from .render import deployment_json, operation_json, sku_list_json
from .rules import (
    check_capacity,
    check_model,
    check_no_running_operation,
    check_quota,
    invalid_property,
    parse_patch,
    parse_put,
    resolve_sku,
)
from .runtime import SimulatorRuntime
from .state import (
    DEFAULT_RAI_POLICY,
    AccountState,
    Deployment,
    Operation,
    OperationFailure,
    OperationKind,
    new_etag,
    utc_now,
)

_ACCOUNT_PATH = (
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.CognitiveServices/accounts/(?P<account>[^/]+)"
)
# ARM matches paths case-insensitively; so do these.
_LIST_PATH = re.compile(_ACCOUNT_PATH + r"/deployments/?$", re.IGNORECASE)
_SKUS_PATH = re.compile(_ACCOUNT_PATH + r"/deployments/(?P<name>[^/]+)/skus/?$", re.IGNORECASE)
_DEPLOYMENT_PATH = re.compile(_ACCOUNT_PATH + r"/deployments/(?P<name>[^/]+)/?$", re.IGNORECASE)
_OPERATION_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.CognitiveServices/locations/(?P<location>[^/]+)"
    r"/(?P<collection>operationStatuses|operationResults)/(?P<op>[^/]+)/?$",
    re.IGNORECASE,
)
_SUBSCRIPTION_PREFIX = re.compile(r"^/subscriptions/(?P<sub>[^/]+)", re.IGNORECASE)
# Permissive version of the RP's runtime rule (section 1.2 of the reference: periods are disputed, so allowed).
_DEPLOYMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_READ_METHODS = frozenset({"GET", "HEAD"})


def is_arm_path(path: str) -> bool:
    return _SUBSCRIPTION_PREFIX.match(path) is not None


class ThrottleBudget:
    """Token buckets behind `x-ms-ratelimit-remaining-subscription-*`: reported, never enforced.

    Sizes follow ARM's published per-subscription limits (reads 250 refilling 25/s, writes 200
    refilling 10/s); real throttling is what faults are for.
    """

    _LIMITS: ClassVar[dict[str, tuple[float, float]]] = {"reads": (250.0, 25.0), "writes": (200.0, 10.0)}

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def take(self, subscription_id: str, kind: str) -> int:
        size, refill_per_second = self._LIMITS[kind]
        key = (subscription_id.lower(), kind)
        now = self._clock()
        level, last = self._buckets.get(key, (size, now))
        level = min(size, level + (now - last) * refill_per_second)
        level = max(level - 1, 0.0)
        self._buckets[key] = (level, now)
        return int(level)


def decorate_arm_response(request: Request, response: Response, budget: ThrottleBudget) -> None:
    """Headers ARM puts on every response, errors and injected faults included."""
    headers = response.headers
    headers["x-ms-request-id"] = str(uuid.uuid4())
    headers["x-ms-correlation-request-id"] = request.headers.get("x-ms-correlation-request-id") or str(uuid.uuid4())
    client_request_id = request.headers.get("x-ms-client-request-id")
    if client_request_id:
        headers["x-ms-client-request-id"] = client_request_id
    subscription = _SUBSCRIPTION_PREFIX.match(request.url.path)
    if subscription:
        kind = "reads" if request.method.upper() in _READ_METHODS else "writes"
        remaining = budget.take(subscription["sub"], kind)
        headers[f"x-ms-ratelimit-remaining-subscription-{kind}"] = str(remaining)


@dataclass(frozen=True)
class ArmCall:
    """What every handler needs about the request once ARM's front door has let it through."""

    request: Request
    api_version: str
    caller: str  # the token's oid, recorded in systemData
    now: float


class ArmApi:
    def __init__(
        self, runtime: SimulatorRuntime, *, more: Callable[[ArmCall, bytes], Response | None] | None = None
    ) -> None:
        self._runtime = runtime
        self._more = more  # other resource providers behind the same front door (foundry.py)

    async def handle(self, request: Request) -> Response:
        try:
            caller = self._authenticate(request)
            api_version = self._api_version(request)
            raw_body = await request.body()
            now = self._runtime.state.settle()
            return self._dispatch(ArmCall(request, api_version, caller, now), raw_body)
        except ArmError as error:
            return error.to_response()

    # --- front door -----------------------------------------------------------------------------

    def _authenticate(self, request: Request) -> str:
        try:
            claims = self._runtime.tokens.verify_for_arm(request.headers.get("authorization"))
        except TokenRejected as rejected:
            challenge = (
                f'Bearer authorization_uri="https://login.microsoftonline.com/{self._runtime.config.tenant_id}", '
                f'error="invalid_token", error_description="{rejected.message}"'
            )
            raise ArmError(401, rejected.code, rejected.message, headers={"WWW-Authenticate": challenge}) from None
        subscription = _SUBSCRIPTION_PREFIX.match(request.url.path)
        check_token_tenant(self._runtime.config, claims, subscription["sub"] if subscription else None)
        return str(claims.get("oid", "unknown"))

    def _api_version(self, request: Request) -> str:
        api_version = request.query_params.get("api-version")
        if not api_version:
            raise ArmError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        supported = self._runtime.config.api_versions
        if api_version not in supported:
            raise ArmError(
                400,
                "InvalidApiVersionParameter",
                f"The api-version '{api_version}' is invalid. The supported versions are '{','.join(supported)}'.",
            )
        return api_version

    def _dispatch(self, call: ArmCall, raw_body: bytes) -> Response:
        path = call.request.url.path
        method = call.request.method.upper()
        if match := _OPERATION_PATH.match(path):
            self._allow(method, "GET")
            return self._operation(call, match)
        if match := _LIST_PATH.match(path):
            self._allow(method, "GET")
            return self._list(call, self._account(match))
        if match := _SKUS_PATH.match(path):
            self._allow(method, "GET")
            account = self._account(match)
            self._existing(account, match["name"])
            return JSONResponse(sku_list_json(self._runtime.config.sku_rules))
        if match := _DEPLOYMENT_PATH.match(path):
            self._allow(method, "GET", "PUT", "PATCH", "DELETE")
            account = self._account(match)
            name = match["name"]
            if method == "GET":
                return JSONResponse(deployment_json(account.config, self._existing(account, name), call.now))
            if method == "PUT":
                return self._put(call, account, name, raw_body)
            if method == "PATCH":
                return self._patch(call, account, name, raw_body)
            return self._delete(call, account, name)
        if self._more is not None and (response := self._more(call, raw_body)) is not None:
            return response
        raise ArmError(404, "NotFound", f"The simulator does not serve the ARM path '{path}'.")

    @staticmethod
    def _allow(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise ArmError(405, "HttpMethodNotAllowed", f"The HTTP method '{method}' is not supported here.")

    def _account(self, match: re.Match[str]) -> AccountState:
        account = self._runtime.state.account(match["sub"], match["rg"], match["account"])
        if account is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.CognitiveServices/accounts/{match['account']}' under resource group "
                f"'{match['rg']}' was not found. For more details please go to "
                "https://aka.ms/ARMResourceNotFoundFix",
            )
        return account

    @staticmethod
    def _existing(account: AccountState, name: str) -> Deployment:
        deployment = account.find(name)
        if deployment is None:
            raise ArmError(
                404,
                "DeploymentNotFound",
                f"The deployment '{name}' was not found in account '{account.config.account_name}'.",
            )
        return deployment

    def _operation_url(self, call: ArmCall, operation: Operation, collection: str) -> str:
        base = str(call.request.base_url).rstrip("/")
        return f"{base}{operation.path(collection)}?api-version={call.api_version}"

    def _async_headers(self, call: ArmCall, operation: Operation, *, with_location: bool) -> dict[str, str]:
        headers = {
            "Azure-AsyncOperation": self._operation_url(call, operation, "operationStatuses"),
            "Retry-After": str(self._runtime.config.retry_after_seconds),
        }
        if with_location:
            headers["Location"] = self._operation_url(call, operation, "operationResults")
        return headers

    # --- deployments ----------------------------------------------------------------------------

    def _list(self, call: ArmCall, account: AccountState) -> Response:
        token = call.request.query_params.get("$skipToken", "0")
        if not token.isdigit():
            raise ArmError(400, "InvalidSkipToken", f"The $skipToken '{token}' is not valid.")
        start = int(token)
        page_size = self._runtime.config.page_size
        everything = account.sorted_deployments()
        page = everything[start : start + page_size]
        body: dict[str, Any] = {"value": [deployment_json(account.config, item, call.now) for item in page]}
        if start + page_size < len(everything):
            base = str(call.request.base_url).rstrip("/")
            body["nextLink"] = (
                f"{base}{call.request.url.path}?api-version={call.api_version}&$skipToken={start + page_size}"
            )
        return JSONResponse(body)

    def _put(self, call: ArmCall, account: AccountState, name: str, raw_body: bytes) -> Response:
        config = self._runtime.config
        if not _DEPLOYMENT_NAME.match(name):
            raise ArmError(
                400,
                "InvalidResourceName",
                "The resource name is invalid. Resource name can only include alphanumeric characters, "
                "underscores and hyphens;",
            )
        put = parse_put(raw_body)
        sku_name, rule = resolve_sku(config, put.sku_name, put.model)
        capacity = rule.default if put.capacity is None else put.capacity
        check_capacity(sku_name, rule, capacity)
        check_model(config, account.config, put.model)
        check_linked_source(config, self._runtime.tokens, call.request, account.config, put.model, call.caller)
        # Checks of the request alone come first; the ones below depend on the account's current state.
        check_no_running_operation(account, call.now)
        existing = account.find(name)
        if existing is not None:
            old_model = (existing.model.name.lower(), existing.model.version)
            model_changes = old_model != (put.model.name.lower(), put.model.version)
            if model_changes and existing.capacity != capacity:
                raise invalid_property("Cannot change capacity and model at the same time for deployment.")
        # Deliberately like the real RP: the deployment's own current capacity counts as used, so an
        # unchanged re-PUT fails once the quota is full (reference section 4, pain point 3).
        check_quota(account, capacity, put.model.name)

        failure = None
        if account.config.fails_model(put.model.name):
            failure = OperationFailure(
                "DeploymentFailed", f"The deployment of model '{put.model.name}' failed during provisioning."
            )
        stamp = utc_now()
        if existing is None:
            deployment = Deployment(
                name=name,
                model=put.model,
                sku_name=sku_name,
                capacity=capacity,
                tags=put.tags,
                rai_policy_name=put.rai_policy_name or DEFAULT_RAI_POLICY,
                version_upgrade_option=put.version_upgrade_option,
                created_at=stamp,
                created_by=call.caller,
                modified_at=stamp,
                modified_by=call.caller,
            )
            account.deployments[name.lower()] = deployment
            kind, status = OperationKind.CREATE, 201
        else:
            deployment = existing
            deployment.model = put.model
            deployment.sku_name = sku_name
            deployment.capacity = capacity
            deployment.tags = put.tags  # PUT replaces the whole resource, tags included
            deployment.rai_policy_name = put.rai_policy_name or DEFAULT_RAI_POLICY
            deployment.version_upgrade_option = put.version_upgrade_option
            deployment.modified_at = stamp
            deployment.modified_by = call.caller
            deployment.etag = new_etag()
            kind, status = OperationKind.UPDATE, 200

        delay = config.provisioning_delay_seconds
        if delay == 0:
            deployment.operation = None
            deployment.final_state = "Failed" if failure else "Succeeded"
            return JSONResponse(deployment_json(account.config, deployment, call.now), status_code=status)
        operation = self._runtime.state.start_operation(kind, account, deployment, delay, failure)
        return JSONResponse(
            deployment_json(account.config, deployment, operation.started),
            status_code=status,
            headers=self._async_headers(call, operation, with_location=False),
        )

    def _patch(self, call: ArmCall, account: AccountState, name: str, raw_body: bytes) -> Response:
        config = self._runtime.config
        patch = parse_patch(raw_body)
        deployment = self._existing(account, name)
        sku_name, rule = resolve_sku(config, patch.sku_name or deployment.sku_name, deployment.model)
        capacity = deployment.capacity if patch.capacity is None else patch.capacity
        check_capacity(sku_name, rule, capacity)
        check_no_running_operation(account, call.now)
        # PATCH is computed correctly: only the increase needs free quota.
        check_quota(account, max(capacity - deployment.capacity, 0), deployment.model.name)

        deployment.sku_name = sku_name
        deployment.capacity = capacity
        if patch.has_tags:
            deployment.tags = patch.tags
        deployment.modified_at = utc_now()
        deployment.modified_by = call.caller
        deployment.etag = new_etag()
        delay = config.provisioning_delay_seconds
        if delay == 0:
            deployment.operation = None
            deployment.final_state = "Succeeded"
            return JSONResponse(deployment_json(account.config, deployment, call.now))
        operation = self._runtime.state.start_operation(OperationKind.PATCH, account, deployment, delay)
        return Response(status_code=202, headers=self._async_headers(call, operation, with_location=True))

    def _delete(self, call: ArmCall, account: AccountState, name: str) -> Response:
        deployment = account.find(name)
        if deployment is None:
            return Response(status_code=204)
        check_no_running_operation(account, call.now)
        delay = self._runtime.config.provisioning_delay_seconds
        if delay == 0:
            del account.deployments[name.lower()]
            return Response(status_code=200)
        operation = self._runtime.state.start_operation(OperationKind.DELETE, account, deployment, delay)
        return Response(status_code=202, headers=self._async_headers(call, operation, with_location=True))

    # --- operation URLs -------------------------------------------------------------------------

    def _operation(self, call: ArmCall, match: re.Match[str]) -> Response:
        operation = self._runtime.state.operations.get(match["op"])
        same_place = operation is not None and (
            operation.subscription_id.lower() == match["sub"].lower()
            and operation.location.lower() == match["location"].lower()
        )
        if operation is None or not same_place:
            raise ArmError(404, "NotFound", f"The operation '{match['op']}' was not found.")
        if match["collection"].lower() == "operationstatuses":
            return JSONResponse(operation_json(operation, call.now))
        return self._operation_result(call, operation)

    def _operation_result(self, call: ArmCall, operation: Operation) -> Response:
        """The Location protocol: 202 while running, then the final result."""
        if not operation.is_done(call.now):
            headers = {
                "Location": str(call.request.url),
                "Retry-After": str(self._runtime.config.retry_after_seconds),
            }
            return Response(status_code=202, headers=headers)
        if operation.failure is not None:
            raise ArmError(400, operation.failure.code, operation.failure.message)
        if operation.kind is OperationKind.DELETE:
            return Response(status_code=204)
        account = self._runtime.state.accounts.get(operation.account)
        deployment = account.deployments.get(operation.deployment_key) if account else None
        if account is None or deployment is None:
            raise ArmError(404, "DeploymentNotFound", "The deployment of this operation no longer exists.")
        return JSONResponse(deployment_json(account.config, deployment, call.now))
