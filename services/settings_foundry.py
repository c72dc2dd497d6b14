"""The settings of Foundry serverless endpoints: which projects, the default one, and ARM's api-version for them."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationInfo, field_validator
from pydantic_settings import BaseSettings

from . import accounts as account_rules
from . import projects as project_rules
from .accounts import Alias
from .errors import ProjectNotFound
from .projects import PROJECTS_EXAMPLE, Project
from .setting_types import ApiVersion, json_setting, setting

# The Microsoft.MachineLearningServices api-version for workspaces, models, serverless endpoints and marketplace
# subscriptions (stable; 2025-06-01 and later add contentSafetyLevel, which the service does not send).
DEFAULT_ML_ARM_API_VERSION = "2024-10-01"


class FoundrySettings(BaseSettings):
    """FOUNDRY_PROJECTS, DEFAULT_PROJECT and ML_ARM_API_VERSION; none required (no projects: no endpoints)."""

    foundry_projects: dict[Alias, Project] = setting(
        "FOUNDRY_PROJECTS",
        {},
        "service",
        description=f"a JSON object of alias -> project, for example {PROJECTS_EXAMPLE}",
    )
    default_project: str = setting("DEFAULT_PROJECT", "", "service")
    ml_arm_api_version: ApiVersion = setting("ML_ARM_API_VERSION", DEFAULT_ML_ARM_API_VERSION, "service")

    @field_validator("foundry_projects", mode="before")
    @classmethod
    def _decode_projects(cls, value: Any) -> Any:
        return json_setting(value)

    @field_validator("foundry_projects")
    @classmethod
    def _name_projects(cls, value: dict[str, Project]) -> dict[str, Project]:
        return account_rules.named(value)

    @field_validator("default_project")
    @classmethod
    def _default_project(cls, value: str, info: ValidationInfo) -> str:
        known = info.data.get("foundry_projects")
        if known is None:  # FOUNDRY_PROJECTS itself is wrong: that is the error to report
            return value
        return project_rules.default_project(known, value)

    def project(self, alias: str | None) -> Project:
        """The project for `?project=<alias>`, or the default one when no alias is given."""
        projects = self.foundry_projects
        if not alias:
            if not self.default_project:
                raise ProjectNotFound(
                    "No Foundry project is configured. An operator adds one to FOUNDRY_PROJECTS.", target="project"
                )
            return projects[self.default_project]
        try:
            return projects[alias]
        except KeyError:
            known = ", ".join(sorted(projects)) or "none configured"
            raise ProjectNotFound(
                f"No Foundry project with alias '{alias}' is configured. Use one of: {known}.", target="project"
            ) from None
