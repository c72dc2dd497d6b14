"""Which model a serverless endpoint serves, and the marketplace subscription a partner model needs first.

A model registered in a Foundry project is named by callers as `<name>` or `<name>/<version>`; ARM wants the
full id `azureml://locations/<region>/workspaces/<workspace GUID>/models/<name>/versions/<n>`, built here from
the workspace's own location and `workspaceId` as ARM reports them (no version: the model's latest). A catalog
model is named by its registry id (`azureml://registries/<registry>/models/<name>/versions/<n>`); one from a
partner registry (any but Microsoft's `azureml`) needs a marketplace subscription in the project, one per model,
shared by every endpoint of that model and of the models fine-tuned from it, whoever created it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from .arm import ArmClient, ArmResponse
from .errors import UpstreamError, ValidationError, error_for_status
from .lro import LongRunningOperation
from .projects import Project

MICROSOFT_REGISTRY = "azureml"
PROJECT_ROLE = "Azure AI Developer"
MISSING_RESOURCE_CODES = ("ResourceGroupNotFound", "SubscriptionNotFound", "ParentResourceNotFound")
_WORKSPACE_MODEL = re.compile(
    r"^azureml://locations/(?P<location>[^/]+)/workspaces/(?P<workspace>[^/]+)/models/(?P<name>[^/]+)"
    r"/versions/(?P<version>[^/]+)$",
    re.IGNORECASE,
)
_REGISTRY_MODEL = re.compile(
    r"^azureml://registries/(?P<registry>[^/]+)/models/(?P<name>[^/]+)(/versions/(?P<version>[^/]+))?$",
    re.IGNORECASE,
)
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
_VERSION = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SUBSCRIPTION_NAME = re.compile(r"[^A-Za-z0-9-]+")
MODEL_HINT = (
    "Use the name of a model registered in the project ('my-llama-ft' or 'my-llama-ft/2'), or a full model id "
    "('azureml://registries/<registry>/models/<name>/versions/<n>')."
)


@dataclass(frozen=True)
class Workspace:
    """What the model ids need of the project's workspace: its region and its GUID."""

    location: str
    guid: str


def ml_url(arm: ArmClient, path: str, api_version: str) -> str:
    return f"{arm.endpoint}{path}?{urlencode({'api-version': api_version})}"


def raise_for_project(response: ArmResponse, project: Project) -> None:
    """Nothing for a success; otherwise the typed error for ARM's answer about `project`: ARM's status, code and
    message, with the operator's fix where it is the operator's."""
    if response.status < 400:
        return
    error = response.error()
    code = str(error.get("code") or "UpstreamError")
    message = str(error.get("message") or f"ARM answered HTTP {response.status}.")
    if response.status == 404 and (code in MISSING_RESOURCE_CODES or code == "ResourceNotFound"):
        message = (
            f"Project alias '{project.alias}' points at {project.arm_id}, which ARM did not find: {message} "
            "Check FOUNDRY_PROJECTS."
        )
    elif response.status == 403:
        message = f"{message} Grant the Function App's identity the '{PROJECT_ROLE}' role on {project.arm_id}."
    headers = {"Retry-After": response.headers["Retry-After"]} if response.headers.get("Retry-After") else {}
    target = error.get("target")
    raise error_for_status(
        response.status,
        message,
        code=code,
        target=target if isinstance(target, str) else None,
        headers=headers,
        correlation_id=response.correlation_id,
    )


def read_workspace(arm: ArmClient, project: Project, api_version: str, request_id: str | None) -> Workspace:
    response = arm.send("GET", ml_url(arm, project.arm_id, api_version), request_id=request_id)
    raise_for_project(response, project)
    body = response.body if isinstance(response.body, dict) else {}
    properties = _object(body.get("properties"))
    location, guid = body.get("location"), properties.get("workspaceId")
    if not isinstance(location, str) or not isinstance(guid, str):
        raise UpstreamError(f"ARM's answer for project '{project.alias}' names no location or workspaceId.")
    return Workspace(location.replace(" ", "").lower(), guid)


def is_full_id(model: str) -> bool:
    return model.lower().startswith("azureml://")


def check_model_reference(model: str) -> None:
    """A model as a caller may give it, checked before any ARM call."""
    if is_full_id(model):
        if not (_WORKSPACE_MODEL.match(model) or _REGISTRY_MODEL.match(model)):
            message = f"'{model[:200]}' is not a model id. {MODEL_HINT}"
            raise ValidationError(message, code="InvalidField", target="model")
        return
    name, _, version = model.partition("/")
    if not _MODEL_NAME.match(name) or (version and not _VERSION.match(version)) or model.count("/") > 1:
        raise ValidationError(f"'{model[:200]}' is not a model name. {MODEL_HINT}", code="InvalidField", target="model")


def resolve_model(
    arm: ArmClient, project: Project, workspace: Workspace, model: str, api_version: str, request_id: str | None
) -> str:
    """The full model id of `model`: as given when it is one, else the project's registered model (its latest
    version when none is named), with the workspace's location and GUID."""
    if is_full_id(model):
        return model
    name, _, version = model.partition("/")
    base = f"{project.arm_id}/models/{quote(name)}"
    if version:
        response = arm.send("GET", ml_url(arm, f"{base}/versions/{quote(version)}", api_version), request_id=request_id)
    else:
        response = arm.send("GET", ml_url(arm, base, api_version), request_id=request_id)
    if response.status == 404:
        shown = f"Version {version} of model '{name}'" if version else f"Model '{name}'"
        raise ValidationError(
            f"{shown} is not registered in project '{project.alias}'. Register it there first, or give a full "
            "model id.",
            code="UnknownModel",
            target="model",
        )
    raise_for_project(response, project)
    if not version:
        properties = response.body.get("properties") if isinstance(response.body, dict) else None
        latest = properties.get("latestVersion") if isinstance(properties, dict) else None
        if not latest:
            raise ValidationError(
                f"Model '{name}' in project '{project.alias}' has no version yet. Register a version first.",
                code="UnknownModel",
                target="model",
            )
        version = str(latest)
    return f"azureml://locations/{workspace.location}/workspaces/{workspace.guid}/models/{name}/versions/{version}"


def partner_model(model_id: str) -> str | None:
    """The registry model id (no version) that needs a marketplace subscription: a partner registry's model."""
    match = _REGISTRY_MODEL.match(model_id)
    if match is None or match["registry"].lower() == MICROSOFT_REGISTRY:
        return None
    return f"azureml://registries/{match['registry']}/models/{match['name']}"


def marketplace_model(given: str) -> str:
    """`marketplaceModel` as a caller gives it: a partner registry's model id, with or without its version."""
    base = partner_model(given)
    if base is None:
        raise ValidationError(
            "marketplaceModel must be the model id of a partner catalog model, e.g. "
            "azureml://registries/Meta/models/Meta-Llama-3.1-8B-Instruct (Microsoft's azureml registry needs none).",
            code="InvalidField",
            target="marketplaceModel",
        )
    return base


def subscription_name(model_id: str) -> str:
    """A marketplace subscription name for a registry model: its name, in the characters ARM allows."""
    name = _SUBSCRIPTION_NAME.sub("-", model_id.rsplit("/", 1)[-1]).strip("-") or "model"
    if not name[0].isalpha():
        name = "m-" + name
    return name[:52].rstrip("-")


def list_subscriptions(
    arm: ArmClient, project: Project, api_version: str, request_id: str | None
) -> list[dict[str, Any]]:
    url = ml_url(arm, f"{project.arm_id}/marketplaceSubscriptions", api_version)
    found: list[dict[str, Any]] = []
    for page in arm.pages(url, request_id=request_id):
        raise_for_project(page, project)
        found.extend(item for item in page.body.get("value", []) if isinstance(item, dict))
    return found


def subscription_of(subscriptions: list[dict[str, Any]], model_id: str) -> dict[str, Any] | None:
    for item in subscriptions:
        properties = _object(item.get("properties"))
        if str(properties.get("modelId", "")).lower() == model_id.lower():
            return item
    return None


def ensure_subscription(
    arm: ArmClient, project: Project, model_id: str, api_version: str, request_id: str | None, deadline: float
) -> tuple[dict[str, Any], bool]:
    """The project's marketplace subscription to `model_id` (no version), created when there is none yet:
    answers it and whether this call created it."""
    existing = subscription_of(list_subscriptions(arm, project, api_version, request_id), model_id)
    if existing is not None:
        return existing, False
    path = f"{project.arm_id}/marketplaceSubscriptions/{subscription_name(model_id)}"
    url = ml_url(arm, path, api_version)
    response: ArmResponse = arm.send(
        "PUT", url, json={"properties": {"modelId": model_id}}, request_id=request_id, retry_conflict=True
    )
    raise_for_project(response, project)
    outcome = LongRunningOperation(arm, "PUT", url, response, request_id).poll_until(deadline)
    if outcome.state.lower() != "succeeded" or outcome.resource is None:
        error = outcome.error or {}
        raise UpstreamError(
            f"The marketplace subscription to {model_id} in project '{project.alias}' is {outcome.state}"
            f"{': ' + str(error.get('message')) if error.get('message') else ''}. Try the PUT again later.",
            code=str(error.get("code") or "MarketplaceSubscriptionNotReady"),
            status=409 if not outcome.terminal else 500,
            correlation_id=response.correlation_id,
        )
    return outcome.resource, True


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
