"""The Azure AI Foundry projects the service acts on (`FOUNDRY_PROJECTS`), and how an alias picks one.

A hub-based Foundry project is an Azure Machine Learning workspace; its serverless endpoints are resources
under it. `FOUNDRY_PROJECTS` is a JSON object of alias -> project, in the style of `AZURE_OPENAI_ACCOUNTS`:
callers pass the alias as `?project=`, never an ARM id. Errors here are `PydanticCustomError`s whose message is
what the value must be; the settings model turns them into a ConfigurationError naming the setting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr

from .accounts import Guid, setting_error

PROJECTS_EXAMPLE = (
    '{"ml": {"subscriptionId": "<guid>", "resourceGroup": "<rg>", "workspaceName": "<project workspace name>"}}'
)


def _matching(pattern: str, expected: str) -> AfterValidator:
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise setting_error(expected)
        return value

    return AfterValidator(check)


class Project(BaseModel):
    """One Foundry project (Azure Machine Learning workspace) the service may act on, known by a short alias."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    subscription_id: Annotated[Guid, Field(min_length=1)] = Field(alias="subscriptionId")
    resource_group: Annotated[
        str, _matching(r"[-\w._()]{1,90}", "is not a valid resource group name (1-90 characters)")
    ] = Field(alias="resourceGroup")
    workspace_name: Annotated[
        str,
        _matching(
            r"[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}",
            "must be 3-33 letters, digits, '_' or '-', starting with a letter or digit",
        ),
    ] = Field(alias="workspaceName")
    # The endpoints the gateway may call: names, or ["*"] (the default: every endpoint of the project).
    inference_endpoints: tuple[Annotated[str, Field(min_length=1)], ...] = Field(
        default=("*",), alias="inferenceEndpoints", description='a list of endpoint names, or ["*"]'
    )
    # The tenant of the project's subscription, for projects outside the Function App's own tenant.
    tenant_id: Guid | None = Field(default=None, alias="tenantId")

    _alias: str = PrivateAttr(default="")

    @property
    def alias(self) -> str:
        return self._alias

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace_name}"
        )

    def may_call(self, endpoint: str) -> bool:
        allowed = self.inference_endpoints
        return "*" in allowed or endpoint in allowed


def project_keys() -> list[str]:
    """The keys a project object in FOUNDRY_PROJECTS may have."""
    return [field.alias or name for name, field in Project.model_fields.items()]


def default_project(projects: Mapping[str, Project], chosen: str) -> str:
    """DEFAULT_PROJECT: required when there are several projects, and always one of the aliases."""
    known = ", ".join(sorted(projects))
    if not chosen:
        if len(projects) > 1:
            raise setting_error(
                "is not set and FOUNDRY_PROJECTS names several projects ({known}). "
                "Set DEFAULT_PROJECT to one of those aliases",
                known=known,
            )
        return next(iter(projects), "")
    if chosen not in projects:
        raise setting_error("must be an alias in FOUNDRY_PROJECTS ({known})", known=known or "none configured")
    return chosen
