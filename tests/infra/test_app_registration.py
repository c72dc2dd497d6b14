"""The API's Entra app registration: its definition, and the azd hook that creates it (run against fake az/azd)."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from . import fake_cli as fake_cli_module
from .bicep_tools import INFRA, REPO

SCRIPT = INFRA / "scripts" / "ensure-app-registration.sh"
APP_ROLES = {"Deployments.Read", "Deployments.Write", "Inference.Invoke", "Audit.Read"}
CLIENT_ID = "5d2c1d6e-0c3f-4c4e-9d61-1b8a3c2f9e10"
AZURE_CLI = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"  # the Azure CLI's well-known client id
USER_IMPERSONATION = "ed4de775-253c-436c-922c-a5a20c8bf409"

# How the fake az answers (fake_cli.py logs every call).
ANSWERS = """\
if args[:2] == ["cloud", "show"]:
    print("https://graph.microsoft.com/")
elif args[:3] == ["ad", "app", "list"]:
    print(os.environ.get("FAKE_EXISTING_APP", ""))
elif args[:3] == ["ad", "sp", "list"]:
    print(os.environ.get("FAKE_EXISTING_SP", ""))
elif args[:1] == ["rest"] and args[2] == "POST":
    print(os.environ["FAKE_NEW_APP"])
"""


def test_app_registration_definition() -> None:
    data = json.loads((INFRA / "entra" / "app-registration.json").read_text(encoding="utf-8"))
    assert data["signInAudience"] == "AzureADMyOrg"
    assert data["api"]["requestedAccessTokenVersion"] == 2
    assert not {"passwordCredentials", "keyCredentials"} & set(data), "no secrets or certificates"
    roles = data["appRoles"]
    assert {r["value"] for r in roles} == APP_ROLES
    ids = [r["id"] for r in roles]
    assert len(set(ids)) == len(ids) and all(str(uuid.UUID(i)) == i for i in ids)
    for role in roles:
        # Users and groups (User) as well as service principals and managed identities (Application).
        assert sorted(role["allowedMemberTypes"]) == ["Application", "User"]
        assert role["isEnabled"] is True and role["description"]
    (scope,) = data["api"]["oauth2PermissionScopes"]
    assert scope["value"] == "user_impersonation" and scope["id"] == USER_IMPERSONATION
    assert "preAuthorizedApplications" not in data["api"], "a pre-authorization may only name an existing scope"
    # The PATCH after creation repeats the api object (Graph replaces it whole) and adds the Azure CLI.
    patch = json.loads((INFRA / "entra" / "api-preauthorize-azure-cli.json").read_text(encoding="utf-8"))
    assert {k: v for k, v in patch["api"].items() if k != "preAuthorizedApplications"} == data["api"]


@pytest.fixture
def fake_cli(tmp_path: Path) -> tuple[dict[str, str], Path]:
    env, log = fake_cli_module.install(tmp_path, ANSWERS)
    return {**env, "AZURE_ENV_NAME": "dev", "RETRY_DELAY_SECONDS": "0"}, log


def _run(env: dict[str, str], **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(SCRIPT)], env={**env, **extra}, cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )


_calls = fake_cli_module.calls


def test_hook_does_nothing_when_the_client_id_is_set(fake_cli: tuple[dict[str, str], Path]) -> None:
    env, log = fake_cli
    result = _run(env, AUTH_CLIENT_ID=CLIENT_ID)
    assert result.returncode == 0, result.stderr
    assert _calls(log) == []


def test_hook_creates_the_registration(fake_cli: tuple[dict[str, str], Path]) -> None:
    env, log = fake_cli
    result = _run(env, FAKE_NEW_APP=CLIENT_ID)
    assert result.returncode == 0, result.stderr
    calls = _calls(log)
    created = [c for c in calls if c["args"][:3] == ["rest", "--method", "POST"]]
    assert len(created) == 1
    assert created[0]["args"][4] == "https://graph.microsoft.com/v1.0/applications"
    assert created[0]["body"]["displayName"] == "fine-tuned-deployments-dev"
    assert {r["value"] for r in created[0]["body"]["appRoles"]} == APP_ROLES
    args = [c["args"] for c in calls]
    assert ["ad", "app", "update", "--id", CLIENT_ID, "--identifier-uris", f"api://{CLIENT_ID}"] in args
    assert ["ad", "sp", "create", "--id", CLIENT_ID, "--output", "none"] in args
    patches = [c for c in calls if c["args"][:3] == ["rest", "--method", "PATCH"]]
    assert [p["args"][4] for p in patches] == [
        f"https://graph.microsoft.com/v1.0/applications(appId='{CLIENT_ID}')",
        f"https://graph.microsoft.com/v1.0/servicePrincipals(appId='{CLIENT_ID}')",
    ]
    preauthorized = patches[0]["body"]["api"]["preAuthorizedApplications"]
    assert preauthorized == [{"appId": AZURE_CLI, "delegatedPermissionIds": [USER_IMPERSONATION]}]
    assert json.loads(patches[1]["args"][6]) == {"appRoleAssignmentRequired": True}
    assert calls[-1] == {"tool": "azd", "args": ["env", "set", "AUTH_CLIENT_ID", CLIENT_ID]}


def test_hook_reuses_an_existing_registration(fake_cli: tuple[dict[str, str], Path]) -> None:
    env, log = fake_cli
    result = _run(env, FAKE_EXISTING_APP=CLIENT_ID, FAKE_EXISTING_SP="sp-object-id", AUTH_APP_NAME="my api")
    assert result.returncode == 0, result.stderr
    calls = _calls(log)
    assert ["ad", "app", "list", "--display-name", "my api", "--query", "[0].appId", "-o", "tsv"] in [
        c["args"] for c in calls
    ]
    assert not [c for c in calls if "POST" in c["args"] or c["args"][:3] == ["ad", "sp", "create"]]
    assert any(c["args"][:3] == ["rest", "--method", "PATCH"] for c in calls), "assignment required is enforced"
    assert calls[-1]["args"] == ["env", "set", "AUTH_CLIENT_ID", CLIENT_ID]


def test_hook_refuses_odd_display_names(fake_cli: tuple[dict[str, str], Path]) -> None:
    env, log = fake_cli
    result = _run(env, AUTH_APP_NAME="x'; rm -rf /")
    assert result.returncode == 1
    assert "AUTH_APP_NAME" in result.stderr
    assert _calls(log) == []
