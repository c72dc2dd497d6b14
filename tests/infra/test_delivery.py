"""azd (azure.yaml) and the GitHub workflows: one-step deploy, OIDC only, tests and approval before deploy."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from .bicep_tools import REPO, body, param_default, template

WORKFLOWS = REPO / ".github" / "workflows"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def _yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the key `on` as True.
    triggers = workflow.get("on", workflow.get(True))
    assert isinstance(triggers, dict)
    return triggers


def _steps_text(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) + str(step.get("uses", "")) for step in job.get("steps", []))


def _uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).lower().startswith(action.lower() + "@")]


def test_azure_yaml_deploys_this_folder_as_a_python_function() -> None:
    data = _yaml(REPO / "azure.yaml")
    assert data["infra"]["path"] == "infra" and data["infra"]["module"] == "main"
    api = data["services"]["api"]
    assert api == {"project": ".", "language": "python", "host": "function"}
    # The service key is the azd-service-name tag the Function App carries.
    assert param_default(template("modules/function-app.bicep"), "serviceName") == "api"
    assert "serviceName" not in body(template("main.bicep")["modules"]["app"])["params"]
    hook = data["hooks"]["preprovision"]
    script = REPO / hook["run"]
    assert script.is_file() and script.stat().st_mode & 0o111, f"{hook['run']} must exist and be executable"


@pytest.mark.parametrize("path", sorted(WORKFLOWS.glob("*.yml")), ids=lambda p: p.name)
def test_workflow_uses_oidc_and_pinned_actions(path: Path) -> None:
    workflow = _yaml(path)
    assert workflow["permissions"] == {"contents": "read"}, "least privilege by default"
    for name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            if "uses" in step:
                assert PINNED.match(step["uses"]), f"{path.name}/{name}: pin {step['uses']} to a commit"
        logins = _uses(job, "azure/login")
        if logins:
            assert job["permissions"].get("id-token") == "write", f"{path.name}/{name}: OIDC needs id-token: write"
            for login in logins:
                inputs = login["with"]
                assert set(inputs) == {"client-id", "tenant-id", "subscription-id"}, f"{path.name}/{name}"
                assert all("vars." in str(v) for v in inputs.values()), "ids are variables, not secrets"
        else:
            assert "id-token" not in job.get("permissions", {}), f"{path.name}/{name}: no token without a login"


def _deploy_job(workflow: dict[str, Any]) -> dict[str, Any]:
    job = workflow["jobs"]["deploy"]
    assert "refs/heads/main" in job["if"] and "pull_request" in job["if"]
    return job


def test_app_workflow() -> None:
    workflow = _yaml(WORKFLOWS / "app.yml")
    triggers = _triggers(workflow)
    assert triggers["pull_request"]["branches"] == ["main"] and triggers["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]
    assert "bash bin/test" in _steps_text(jobs["test"])
    bicep = _steps_text(jobs["bicep"])
    for command in ("az bicep lint", "az bicep build ", "az bicep build-params"):
        assert command in bicep
    assert workflow["env"] == {"TEMPLATE": "infra/main.bicep", "PARAMETERS": "infra/main.bicepparam"}
    what_if = _steps_text(jobs["what-if"])
    assert "az deployment sub what-if" in what_if and "--validation-level ProviderNoRbac" in what_if
    assert jobs["what-if"]["environment"] == "preview"
    deploy = _deploy_job(workflow)
    assert {"test", "bicep", "what-if"} <= set(deploy["needs"]), "tests and what-if run before deploy"
    assert deploy["environment"]["name"] == "production"
    steps = _steps_text(deploy)
    assert "az deployment sub create" in steps
    (code,) = _uses(deploy, "Azure/functions-action")
    assert code["with"]["remote-build"] is True and code["with"]["respect-funcignore"] is True
    assert "publish-profile" not in code["with"]


def test_models_workflow() -> None:
    workflow = _yaml(WORKFLOWS / "models.yml")
    triggers = _triggers(workflow)
    for event in ("pull_request", "push"):
        assert "infra/models/**" in triggers[event]["paths"]
    jobs = workflow["jobs"]
    assert "pytest tests/infra" in _steps_text(jobs["checks"])
    bicep = _steps_text(jobs["bicep"])
    for command in ("az bicep lint", "az bicep build ", "az bicep build-params"):
        assert command in bicep
    assert workflow["env"] == {"TEMPLATE": "infra/models/main.bicep", "PARAMETERS": "infra/models/main.bicepparam"}
    assert "az deployment group what-if" in _steps_text(jobs["what-if"])
    deploy = _deploy_job(workflow)
    assert {"checks", "bicep", "what-if"} <= set(deploy["needs"])
    assert deploy["environment"] == "models"
    assert "az deployment group create" in _steps_text(deploy)
    assert workflow["concurrency"]["cancel-in-progress"] is False, "never two model deployments at once"


def test_app_workflow_ignores_what_the_models_workflow_owns() -> None:
    app = _triggers(_yaml(WORKFLOWS / "app.yml"))
    for event in ("pull_request", "push"):
        assert "infra/models/**" in app[event]["paths-ignore"]
