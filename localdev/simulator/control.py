"""The `/_sim` control and observation API: unauthenticated and unlogged, for tests on loopback only."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .config import ConfigError
from .errors import arm_error_body
from .faults import FaultSpecError
from .observe import LOG_SCOPES
from .render import deployment_json, operation_json
from .runtime import SimulatorRuntime


def _bad_request(code: str, message: str) -> JSONResponse:
    return JSONResponse(arm_error_body(code, message), status_code=400)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError) as error:
        raise ConfigError(f"the body is not valid JSON: {error}") from None


def control_routes(runtime: SimulatorRuntime) -> list[BaseRoute]:
    """Routes mounted under /_sim."""

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def config(request: Request) -> Response:
        try:
            if request.method == "PUT":
                runtime.replace_config(await _json_body(request))
            elif request.method == "PATCH":
                changes = await _json_body(request)
                if not isinstance(changes, dict):
                    raise ConfigError("PATCH /_sim/config needs a JSON object of top-level keys to replace")
                runtime.merge_config(changes)
        except ConfigError as error:
            return _bad_request("InvalidSimulatorConfig", str(error))
        return JSONResponse(runtime.config.to_json())

    async def reset(request: Request) -> Response:
        runtime.reset()
        return JSONResponse({"status": "reset"})

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            try:
                spec = await _json_body(request)
                fault = runtime.faults.add(spec)
            except (FaultSpecError, ConfigError) as error:
                return _bad_request("InvalidFault", str(error))
            return JSONResponse(fault.to_json(), status_code=201)
        if request.method == "DELETE":
            runtime.faults.clear()
            return Response(status_code=204)
        return JSONResponse({"value": runtime.faults.to_json()})

    async def one_fault(request: Request) -> Response:
        if runtime.faults.remove(request.path_params["fault_id"]):
            return Response(status_code=204)
        return JSONResponse(arm_error_body("NotFound", "No such fault."), status_code=404)

    async def requests_log(request: Request) -> Response:
        if request.method == "DELETE":
            runtime.observer.clear()
            return Response(status_code=204)
        scope = request.query_params.get("scope")
        if scope is not None and scope not in LOG_SCOPES:
            return _bad_request("InvalidScope", f"scope must be one of {list(LOG_SCOPES)}")
        return JSONResponse({"value": runtime.observer.select(scope)})

    async def state(request: Request) -> Response:
        now = runtime.state.settle()
        accounts = [
            {
                "id": account.config.arm_id,
                "subscriptionId": account.config.subscription_id,
                "resourceGroup": account.config.resource_group,
                "accountName": account.config.account_name,
                "location": account.config.location,
                "quota": account.config.quota,
                "usedCapacity": account.used_capacity(),
                "busy": account.is_busy(now),
                "deployments": [
                    deployment_json(account.config, deployment, now) for deployment in account.sorted_deployments()
                ],
            }
            for account in runtime.state.accounts.values()
        ]
        operations = [
            {**operation_json(operation, now), "kind": operation.kind.value, "deployment": operation.deployment_key}
            for operation in runtime.state.operations.values()
        ]
        return JSONResponse({"accounts": accounts, "operations": operations, "operationsHeld": runtime.state.held})

    async def hold_operations(request: Request) -> Response:
        runtime.state.hold()
        return JSONResponse({"operationsHeld": True})

    async def release_operations(request: Request) -> Response:
        runtime.state.release()
        return JSONResponse({"operationsHeld": False})

    async def stats(request: Request) -> Response:
        return JSONResponse(runtime.observer.stats())

    return [
        Route("/health", health, methods=["GET"]),
        Route("/config", config, methods=["GET", "PUT", "PATCH"]),
        Route("/reset", reset, methods=["POST"]),
        Route("/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/faults/{fault_id}", one_fault, methods=["DELETE"]),
        Route("/requests", requests_log, methods=["GET", "DELETE"]),
        Route("/state", state, methods=["GET"]),
        Route("/operations/hold", hold_operations, methods=["POST"]),
        Route("/operations/release", release_operations, methods=["POST"]),
        Route("/stats", stats, methods=["GET"]),
    ]
