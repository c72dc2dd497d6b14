"""Config of the simulated Azure AI Foundry projects (Azure Machine Learning workspaces) and their models.

```json
"foundryProjects": [{
  "subscriptionId": "…", "resourceGroup": "…", "workspaceName": "…", "location": "eastus2",
  "workspaceId": "<guid, default derived from the name>",
  "models": [{"name": "phi-ft", "versions": ["1", "2"], "baseModel": "<registry model id, optional>"}],
  "catalog": ["azureml://registries/Meta/models/Meta-Llama-3.1-8B-Instruct"]
}]
```

`catalog` lists the registry models the project may deploy (absent: any); a `baseModel` from a partner registry
makes the fine-tuned model need that model's marketplace subscription, as a catalog model of that registry does.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from .config_readers import (
    ConfigError,
    read_list,
    read_object,
    read_optional_string,
    read_string,
    read_strings,
    refuse_unknown_keys,
)

_PROJECT_KEYS = frozenset(
    {"subscriptionId", "resourceGroup", "workspaceName", "location", "workspaceId", "models", "catalog", "tenantId"}
)
_MODEL_KEYS = frozenset({"name", "versions", "baseModel"})
MICROSOFT_REGISTRY = "azureml"


@dataclass(frozen=True)
class WorkspaceModel:
    name: str
    versions: tuple[str, ...]
    base_model: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "versions": list(self.versions)}
        if self.base_model:
            body["baseModel"] = self.base_model
        return body


@dataclass(frozen=True)
class FoundryProjectConfig:
    subscription_id: str
    resource_group: str
    workspace_name: str
    location: str
    workspace_id: str
    models: tuple[WorkspaceModel, ...] = ()
    catalog: tuple[str, ...] | None = None
    tenant_id: str | None = field(default=None)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.subscription_id.lower(), self.resource_group.lower(), self.workspace_name.lower())

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace_name}"
        )

    def model(self, name: str) -> WorkspaceModel | None:
        return next((model for model in self.models if model.name.lower() == name.lower()), None)

    def model_id(self, model: WorkspaceModel, version: str) -> str:
        return (
            f"azureml://locations/{self.location}/workspaces/{self.workspace_id}/models/{model.name}/versions/{version}"
        )

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "subscriptionId": self.subscription_id,
            "resourceGroup": self.resource_group,
            "workspaceName": self.workspace_name,
            "location": self.location,
            "workspaceId": self.workspace_id,
            "models": [model.to_json() for model in self.models],
        }
        if self.catalog is not None:
            body["catalog"] = list(self.catalog)
        if self.tenant_id:
            body["tenantId"] = self.tenant_id
        return body


def parse_foundry_projects(raw: object) -> tuple[FoundryProjectConfig, ...]:
    projects = tuple(
        _project(item, f"foundryProjects[{index}]") for index, item in enumerate(read_list(raw, "foundryProjects"))
    )
    keys = [project.key for project in projects]
    if len(set(keys)) != len(keys):
        raise ConfigError("foundryProjects: the same subscriptionId/resourceGroup/workspaceName appears twice")
    return projects


def _project(raw: object, where: str) -> FoundryProjectConfig:
    body = read_object(raw, where)
    refuse_unknown_keys(body, _PROJECT_KEYS, where)
    names = {}
    for key in ("subscriptionId", "resourceGroup", "workspaceName"):
        names[key] = read_string(body, key, where, "")
        if not names[key]:
            raise ConfigError(f"{where}.{key}: required")
    models = tuple(
        _model(item, f"{where}.models[{i}]") for i, item in enumerate(read_list(body.get("models", []), where))
    )
    catalog = body.get("catalog")
    return FoundryProjectConfig(
        subscription_id=names["subscriptionId"],
        resource_group=names["resourceGroup"],
        workspace_name=names["workspaceName"],
        location=read_string(body, "location", where, "eastus2").replace(" ", "").lower(),
        workspace_id=read_string(body, "workspaceId", where, "")
        or str(uuid.uuid5(uuid.NAMESPACE_URL, "workspace:" + names["workspaceName"].lower())),
        models=models,
        catalog=None if catalog is None else tuple(read_strings(catalog, f"{where}.catalog")),
        tenant_id=read_optional_string(body, "tenantId", where),
    )


def _model(raw: object, where: str) -> WorkspaceModel:
    body = read_object(raw, where)
    refuse_unknown_keys(body, _MODEL_KEYS, where)
    name = read_string(body, "name", where, "")
    if not name:
        raise ConfigError(f"{where}.name: required")
    versions = tuple(read_strings(body.get("versions", ["1"]), f"{where}.versions"))
    if not versions:
        raise ConfigError(f"{where}.versions: must list at least one version")
    return WorkspaceModel(name, versions, read_optional_string(body, "baseModel", where))
