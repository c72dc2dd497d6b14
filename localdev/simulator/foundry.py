"""ARM's `Microsoft.MachineLearningServices` surface of Foundry projects: workspaces, their models, serverless
endpoints (PUT/DELETE as long-running operations, listKeys, regenerateKeys) and marketplace subscriptions.

Served behind the ARM front door of `arm.py` (token, tenant, api-version), from `FoundryState`. PUT answers
200/201 with `Azure-AsyncOperation`; DELETE 202 with `Location` and `Retry-After`, or 204 when there is nothing to
delete. A partner catalog model (any registry but Microsoft's `azureml`), or a workspace model fine-tuned from
one, needs the project's marketplace subscription to that model first; a custom (workspace) model is served by
one endpoint at most; an endpoint's model cannot change.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.responses import JSONResponse, Response

from .arm import ArmCall
from .errors import ArmError
from .foundry_config import MICROSOFT_REGISTRY, FoundryProjectConfig
from .foundry_state import MarketplaceSubscription, ProjectState, ServerlessEndpoint, new_key, stamp
from .render import timestamp
from .runtime import SimulatorRuntime

_WS = (
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)"
)
_PATHS = [
    (name, re.compile(_WS + pattern + r"/?$", re.IGNORECASE))
    for name, pattern in (
        ("workspace", ""),
        ("models", "/models"),
        ("model", "/models/(?P<model>[^/]+)"),
        ("versions", "/models/(?P<model>[^/]+)/versions"),
        ("version", "/models/(?P<model>[^/]+)/versions/(?P<version>[^/]+)"),
        ("endpoints", "/serverlessEndpoints"),
        ("endpoint", "/serverlessEndpoints/(?P<name>[^/]+)"),
        ("listKeys", "/serverlessEndpoints/(?P<name>[^/]+)/listKeys"),
        ("regenerateKeys", "/serverlessEndpoints/(?P<name>[^/]+)/regenerateKeys"),
        ("subscriptions", "/marketplaceSubscriptions"),
        ("subscription", "/marketplaceSubscriptions/(?P<name>[^/]+)"),
    )
]
_OPERATION = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.MachineLearningServices/locations/(?P<location>[^/]+)"
    r"/(?P<collection>mfeOperationsStatus|mfeOperationResults)/(?P<op>[^/]+)/?$",
    re.IGNORECASE,
)
_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{0,51}$")
_WORKSPACE_MODEL = re.compile(
    r"^azureml://locations/(?P<location>[^/]+)/workspaces/(?P<workspace>[^/]+)/models/(?P<name>[^/]+)"
    r"/versions/(?P<version>[^/]+)$",
    re.IGNORECASE,
)
_REGISTRY_MODEL = re.compile(
    r"^azureml://registries/(?P<registry>[^/]+)/models/(?P<name>[^/]+)(/versions/(?P<version>[^/]+))?$", re.IGNORECASE
)
ENDPOINT_TYPE = "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints"
SUBSCRIPTION_TYPE = "Microsoft.MachineLearningServices/workspaces/marketplaceSubscriptions"
SERVERLESS_PREFIX = "/serverless"  # each endpoint's data plane: /serverless/<workspace GUID>/<endpoint>


def user_error(message: str, status: int = 400, code: str = "UserError") -> ArmError:
    return ArmError(status, code, message)


def partner_base(model_id: str, project: FoundryProjectConfig) -> str | None:
    """The partner registry model (no version) whose marketplace subscription `model_id` needs, if any."""
    if match := _REGISTRY_MODEL.match(model_id):
        if match["registry"].lower() == MICROSOFT_REGISTRY:
            return None
        return f"azureml://registries/{match['registry']}/models/{match['name']}"
    if (match := _WORKSPACE_MODEL.match(model_id)) and (model := project.model(match["name"])) and model.base_model:
        return partner_base(model.base_model, project)
    return None


class FoundryArm:
    def __init__(self, runtime: SimulatorRuntime) -> None:
        self._runtime = runtime

    def handle(self, call: ArmCall, raw_body: bytes) -> Response | None:
        """The answer to a Microsoft.MachineLearningServices path, or None for any other path."""
        path, method = call.request.url.path, call.request.method.upper()
        foundry = self._runtime.foundry
        foundry.settle(call.now)
        if match := _OPERATION.match(path):
            return self._operation(call, match)
        found = next(((kind, m) for kind, pattern in _PATHS if (m := pattern.match(path))), None)
        if found is None:
            return None
        kind, match = found
        project = foundry.project(match["sub"], match["rg"], match["ws"])
        if project is None:
            code = "ResourceNotFound" if kind == "workspace" else "ParentResourceNotFound"
            raise ArmError(
                404,
                code,
                f"The Resource 'Microsoft.MachineLearningServices/workspaces/{match['ws']}' under resource group "
                f"'{match['rg']}' was not found.",
            )
        allowed = {"endpoint": ("GET", "PUT", "DELETE"), "subscription": ("GET", "PUT", "DELETE")}.get(kind, ("GET",))
        if kind in ("listKeys", "regenerateKeys"):
            allowed = ("POST",)
        if method not in allowed:
            raise ArmError(405, "HttpMethodNotAllowed", f"The HTTP method '{method}' is not supported here.")
        handler = getattr(self, f"_{kind}_{method.lower()}", None) or getattr(self, f"_{kind}")
        response: Response = handler(call, project, match, raw_body)
        return response

    # --- workspace and models -------------------------------------------------------------------

    def _workspace(self, call: ArmCall, project: ProjectState, match: re.Match[str], body: bytes) -> Response:
        config = project.config
        return JSONResponse(
            {
                "id": config.arm_id,
                "name": config.workspace_name,
                "type": "Microsoft.MachineLearningServices/workspaces",
                "kind": "Project",
                "location": config.location,
                "properties": {
                    "workspaceId": config.workspace_id,
                    "friendlyName": config.workspace_name,
                    "provisioningState": "Succeeded",
                },
            }
        )

    def _models(self, call: ArmCall, project: ProjectState, match: re.Match[str], body: bytes) -> Response:
        config = project.config
        return JSONResponse({"value": [_container(config, model.name) for model in config.models]})

    def _model(self, call: ArmCall, project: ProjectState, match: re.Match[str], body: bytes) -> Response:
        return JSONResponse(_container(project.config, _known_model(project, match["model"]).name))

    def _versions(self, call: ArmCall, project: ProjectState, match: re.Match[str], body: bytes) -> Response:
        model = _known_model(project, match["model"])
        return JSONResponse({"value": [_version(project.config, model.name, v) for v in model.versions]})

    def _version(self, call: ArmCall, project: ProjectState, match: re.Match[str], body: bytes) -> Response:
        model = _known_model(project, match["model"])
        if match["version"] not in model.versions:
            raise ArmError(404, "ResourceNotFound", f"Version {match['version']} of model '{model.name}' not found.")
        return JSONResponse(_version(project.config, model.name, match["version"]))

    # --- serverless endpoints -------------------------------------------------------------------

    def _endpoints(self, call: ArmCall, project: ProjectState, match: re.Match[str], body: bytes) -> Response:
        token = call.request.query_params.get("$skipToken", "0")
        if not token.isdigit():
            raise ArmError(400, "InvalidSkipToken", f"The $skipToken '{token}' is not valid.")
        start, size = int(token), self._runtime.config.page_size
        everything = sorted(project.endpoints.values(), key=lambda endpoint: endpoint.name.lower())
        page: dict[str, Any] = {
            "value": [self.endpoint_json(call, project, e) for e in everything[start : start + size]]
        }
        if start + size < len(everything):
            base = str(call.request.base_url).rstrip("/")
            page["nextLink"] = f"{base}{call.request.url.path}?api-version={call.api_version}&$skipToken={start + size}"
        return JSONResponse(page)

    def _endpoint_get(self, call: ArmCall, project: ProjectState, match: re.Match[str], body: bytes) -> Response:
        return JSONResponse(self.endpoint_json(call, project, _existing(project, match["name"])))

    def _endpoint_put(self, call: ArmCall, project: ProjectState, match: re.Match[str], raw: bytes) -> Response:
        name = match["name"]
        if not _NAME.match(name):
            raise user_error(f"The serverless endpoint name '{name}' is invalid: ^[a-zA-Z][a-zA-Z0-9-]{{0,51}}$.")
        body = _json_object(raw)
        properties = body.get("properties") if isinstance(body.get("properties"), dict) else None
        settings = properties.get("modelSettings") if properties else None
        model_id = settings.get("modelId") if isinstance(settings, dict) else None
        if not isinstance(body.get("location"), str) or not isinstance(model_id, str) or properties is None:
            raise user_error("location and properties.modelSettings.modelId are required.")
        if properties.get("authMode", "Key") != "Key":
            raise user_error("authMode must be Key: serverless endpoints support key authentication only.")
        safety = (properties.get("contentSafety") or {}).get("contentSafetyStatus", "Enabled")
        if safety not in ("Enabled", "Disabled"):
            raise user_error("contentSafety.contentSafetyStatus must be Enabled or Disabled.")
        self._check_model(project, model_id)
        existing = project.endpoints.get(name.lower())
        now = call.now
        if existing is not None:
            if existing.model_id.lower() != model_id.lower():
                raise user_error(f"The model of serverless endpoint '{name}' cannot be changed.")
            if existing.is_busy(now):
                raise ArmError(409, "Conflict", f"An operation is already running on serverless endpoint '{name}'.")
        elif _WORKSPACE_MODEL.match(model_id):
            for other in project.endpoints.values():
                if other.model_id.lower() == model_id.lower():
                    raise user_error(
                        f"Only one serverless endpoint per custom model is allowed: endpoint '{other.name}' already "
                        f"serves {model_id}."
                    )
        base = partner_base(model_id, project.config)
        subscription = project.subscription_for(base) if base else None
        if base and subscription is None:
            raise user_error(
                f"Model {model_id} requires a marketplace subscription to {base} in this project. Create "
                "workspaces/<project>/marketplaceSubscriptions/<name> with that modelId first.",
                code="MarketplaceSubscriptionRequired",
            )
        raw_tags = body.get("tags")
        tags: dict[str, str] = raw_tags if isinstance(raw_tags, dict) else {}
        if existing is None:
            endpoint = ServerlessEndpoint(
                name, model_id, safety, dict(tags), project.config.location, stamp(), call.caller
            )
            if subscription is not None:
                endpoint.marketplace_subscription_id = (
                    f"{project.config.arm_id}/marketplaceSubscriptions/{subscription.name}"
                )
            project.endpoints[name.lower()] = endpoint
            kind, status = "create", 201
        else:
            endpoint, kind, status = existing, "update", 200
            endpoint.content_safety, endpoint.tags = safety, dict(tags)
        delay = self._runtime.config.provisioning_delay_seconds
        if delay == 0:
            return JSONResponse(self.endpoint_json(call, project, endpoint), status_code=status)
        operation = self._runtime.foundry.start(kind, project, endpoint, now, delay)
        headers = {
            "Azure-AsyncOperation": self._operation_url(call, operation.path("mfeOperationsStatus")),
            "Retry-After": str(self._runtime.config.retry_after_seconds),
        }
        return JSONResponse(self.endpoint_json(call, project, endpoint), status_code=status, headers=headers)

    def _endpoint_delete(self, call: ArmCall, project: ProjectState, match: re.Match[str], raw: bytes) -> Response:
        endpoint = project.endpoints.get(match["name"].lower())
        if endpoint is None:
            return Response(status_code=204)
        if endpoint.is_busy(call.now):
            raise ArmError(
                409, "Conflict", f"An operation is already running on serverless endpoint '{endpoint.name}'."
            )
        delay = self._runtime.config.provisioning_delay_seconds
        if delay == 0:
            del project.endpoints[endpoint.name.lower()]
            return Response(status_code=200)
        operation = self._runtime.foundry.start("delete", project, endpoint, call.now, delay)
        headers = {
            "Location": self._operation_url(call, operation.path("mfeOperationResults")),
            "Retry-After": str(max(self._runtime.config.retry_after_seconds, 1)),
        }
        return Response(status_code=202, headers=headers)

    def _listKeys(self, call: ArmCall, project: ProjectState, match: re.Match[str], raw: bytes) -> Response:
        endpoint = _existing(project, match["name"])
        return JSONResponse({"primaryKey": endpoint.primary_key, "secondaryKey": endpoint.secondary_key})

    def _regenerateKeys(self, call: ArmCall, project: ProjectState, match: re.Match[str], raw: bytes) -> Response:
        endpoint = _existing(project, match["name"])
        body = _json_object(raw)
        key_type = body.get("keyType")
        if key_type not in ("Primary", "Secondary"):
            raise user_error("keyType must be Primary or Secondary.")
        regenerate(endpoint, key_type, body.get("keyValue"))
        return JSONResponse({"primaryKey": endpoint.primary_key, "secondaryKey": endpoint.secondary_key})

    # --- marketplace subscriptions --------------------------------------------------------------

    def _subscriptions(self, call: ArmCall, project: ProjectState, match: re.Match[str], raw: bytes) -> Response:
        items = sorted(project.subscriptions.values(), key=lambda item: item.name.lower())
        return JSONResponse({"value": [_subscription_json(project.config, item) for item in items]})

    def _subscription_get(self, call: ArmCall, project: ProjectState, match: re.Match[str], raw: bytes) -> Response:
        found = project.subscriptions.get(match["name"].lower())
        if found is None:
            raise ArmError(404, "ResourceNotFound", f"Marketplace subscription '{match['name']}' was not found.")
        return JSONResponse(_subscription_json(project.config, found))

    def _subscription_put(self, call: ArmCall, project: ProjectState, match: re.Match[str], raw: bytes) -> Response:
        name = match["name"]
        if not _NAME.match(name):
            raise user_error(f"The marketplace subscription name '{name}' is invalid: ^[a-zA-Z][a-zA-Z0-9-]{{0,51}}$.")
        properties = _json_object(raw).get("properties")
        model_id = properties.get("modelId") if isinstance(properties, dict) else None
        registry = _REGISTRY_MODEL.match(model_id) if isinstance(model_id, str) else None
        if registry is None or registry["version"] or registry["registry"].lower() == MICROSOFT_REGISTRY:
            raise user_error(
                f"properties.modelId '{model_id}' is not a marketplace offer: give a partner registry model id "
                "without a version."
            )
        assert isinstance(model_id, str)
        existing = project.subscriptions.get(name.lower())
        other = project.subscription_for(model_id)
        if other is not None and other is not existing:
            raise ArmError(
                409, "Conflict", f"Marketplace subscription '{other.name}' already subscribes to {model_id}."
            )
        if existing is not None:
            if existing.model_id.lower() != model_id.lower():
                raise user_error(f"The modelId of marketplace subscription '{name}' cannot be changed.")
            return JSONResponse(_subscription_json(project.config, existing))
        created = MarketplaceSubscription(name, model_id, stamp(), call.caller)
        project.subscriptions[name.lower()] = created
        return JSONResponse(_subscription_json(project.config, created), status_code=201)

    def _subscription_delete(self, call: ArmCall, project: ProjectState, match: re.Match[str], raw: bytes) -> Response:
        found = project.subscriptions.pop(match["name"].lower(), None)
        return Response(status_code=200 if found else 204)

    # --- operations and rendering ---------------------------------------------------------------

    def _operation(self, call: ArmCall, match: re.Match[str]) -> Response:
        operation = self._runtime.foundry.operations.get(match["op"])
        if operation is None or operation.subscription_id.lower() != match["sub"].lower():
            raise ArmError(404, "NotFound", f"The operation '{match['op']}' was not found.")
        if match["collection"].lower() == "mfeoperationsstatus":
            return JSONResponse(
                {
                    "id": operation.path("mfeOperationsStatus"),
                    "name": operation.op_id,
                    "status": operation.status(call.now),
                }
            )
        if not operation.is_done(call.now):
            headers = {"Location": str(call.request.url), "Retry-After": str(self._runtime.config.retry_after_seconds)}
            return Response(status_code=202, headers=headers)
        return Response(status_code=204 if operation.kind == "delete" else 200)

    def _operation_url(self, call: ArmCall, path: str) -> str:
        return f"{str(call.request.base_url).rstrip('/')}{path}?api-version={call.api_version}"

    def endpoint_json(self, call: ArmCall, project: ProjectState, endpoint: ServerlessEndpoint) -> dict[str, Any]:
        base = str(call.request.base_url).rstrip("/")
        properties: dict[str, Any] = {
            "authMode": "Key",
            "contentSafety": {"contentSafetyStatus": endpoint.content_safety},
            "endpointState": endpoint.endpoint_state(call.now),
            "inferenceEndpoint": {
                "uri": f"{base}{SERVERLESS_PREFIX}/{project.config.workspace_id}/{endpoint.name}",
                "headers": {},
            },
            "modelSettings": {"modelId": endpoint.model_id},
            "provisioningState": endpoint.provisioning_state(call.now),
        }
        if endpoint.marketplace_subscription_id:
            properties["marketplaceSubscriptionId"] = endpoint.marketplace_subscription_id
        return {
            "id": f"{project.config.arm_id}/serverlessEndpoints/{endpoint.name}",
            "name": endpoint.name,
            "type": ENDPOINT_TYPE,
            "location": endpoint.location,
            "sku": {"name": "Consumption"},
            "tags": dict(endpoint.tags),
            "systemData": {"createdAt": timestamp(endpoint.created_at), "createdBy": endpoint.created_by},
            "properties": properties,
        }

    def _check_model(self, project: ProjectState, model_id: str) -> None:
        config = project.config
        if match := _WORKSPACE_MODEL.match(model_id):
            same_place = (match["location"].lower(), match["workspace"].lower()) == (
                config.location,
                config.workspace_id.lower(),
            )
            model = config.model(match["name"])
            if not same_place or model is None or match["version"] not in model.versions:
                raise user_error(f"Model {model_id} was not found in workspace '{config.workspace_name}'.")
            return
        if match := _REGISTRY_MODEL.match(model_id):
            base = f"azureml://registries/{match['registry']}/models/{match['name']}"
            if match["version"] and (config.catalog is None or base.lower() in {c.lower() for c in config.catalog}):
                return
        raise user_error(f"Model {model_id} is not a model this project can deploy serverless.")


def regenerate(endpoint: ServerlessEndpoint, key_type: str, value: object = None) -> None:
    key = value if isinstance(value, str) and value else new_key()
    if key_type == "Primary":
        endpoint.primary_key = key
    else:
        endpoint.secondary_key = key


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise ArmError(
            400, "InvalidRequestContent", "The request content was invalid and could not be deserialized."
        ) from None
    if not isinstance(body, dict):
        raise ArmError(400, "InvalidRequestContent", "The request content must be a JSON object.")
    return body


def _existing(project: ProjectState, name: str) -> ServerlessEndpoint:
    endpoint = project.endpoints.get(name.lower())
    if endpoint is None:
        raise ArmError(404, "ResourceNotFound", f"Serverless endpoint '{name}' was not found.")
    return endpoint


def _known_model(project: ProjectState, name: str) -> Any:
    model = project.config.model(name)
    if model is None:
        raise ArmError(
            404, "ResourceNotFound", f"Model '{name}' was not found in workspace '{project.config.workspace_name}'."
        )
    return model


def _container(config: FoundryProjectConfig, name: str) -> dict[str, Any]:
    model = config.model(name)
    versions = model.versions if model else ()
    return {
        "id": f"{config.arm_id}/models/{name}",
        "name": name,
        "type": "Microsoft.MachineLearningServices/workspaces/models",
        "properties": {"latestVersion": versions[-1] if versions else None, "isArchived": False},
    }


def _version(config: FoundryProjectConfig, name: str, version: str) -> dict[str, Any]:
    model = config.model(name)
    properties: dict[str, Any] = {"modelType": "custom_model", "isArchived": False, "properties": {}}
    if model and model.base_model:
        properties["properties"] = {"baseModel": model.base_model}
    return {
        "id": f"{config.arm_id}/models/{name}/versions/{version}",
        "name": version,
        "type": "Microsoft.MachineLearningServices/workspaces/models/versions",
        "properties": properties,
    }


def _subscription_json(config: FoundryProjectConfig, item: MarketplaceSubscription) -> dict[str, Any]:
    registry = _REGISTRY_MODEL.match(item.model_id)
    publisher, offer = (registry["registry"], registry["name"].lower()) if registry else ("", "")
    return {
        "id": f"{config.arm_id}/marketplaceSubscriptions/{item.name}",
        "name": item.name,
        "type": SUBSCRIPTION_TYPE,
        "systemData": {"createdAt": timestamp(item.created_at), "createdBy": item.created_by},
        "properties": {
            "modelId": item.model_id,
            "marketplacePlan": {"publisherId": publisher.lower(), "offerId": offer, "planId": offer},
            "marketplaceSubscriptionStatus": "Subscribed",
            "provisioningState": "Succeeded",
        },
    }
