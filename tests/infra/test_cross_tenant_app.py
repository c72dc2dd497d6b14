"""The azd hook that makes the multi-tenant app trusting the user-assigned identity (run against fake az/azd)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from . import fake_cli
from .bicep_tools import INFRA, REPO

SCRIPT = INFRA / "scripts" / "ensure-cross-tenant-app.sh"
APP = "7a3f0c1e-2b4d-4e6f-8a9b-0c1d2e3f4a5b"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
IDENTITY = "3c2b1a09-8f7e-4d6c-9b5a-4f3e2d1c0b9a"
SYSTEM = "9e8d7c6b-5a49-4382-8170-6f5e4d3c2b1a"

# How the fake az answers (fake_cli.py logs every call).
ANSWERS = """\
if args[:3] == ["ad", "app", "show"]:
    print(os.environ.get("FAKE_APP_AUDIENCE", "AzureADMultipleOrgs"))
elif args[:3] == ["ad", "app", "create"]:
    print(os.environ["FAKE_NEW_APP"])
elif args[:3] == ["ad", "sp", "list"]:
    print(os.environ.get("FAKE_EXISTING_SP", ""))
elif args[:4] == ["ad", "app", "federated-credential", "list"]:
    print(os.environ.get("FAKE_CREDENTIAL", ""))
"""


@pytest.fixture
def run(tmp_path: Path) -> Any:
    fake, log = fake_cli.install(tmp_path, ANSWERS)
    provisioned = {
        **fake,
        "RETRY_DELAY_SECONDS": "0",
        "AZURE_ENV_NAME": "dev",
        "AZURE_TENANT_ID": TENANT,
        "AZURE_RESOURCE_GROUP": "rg-dev",
        "FUNCTION_APP_NAME": "func-dev",
        "FUNCTION_APP_PRINCIPAL_ID": SYSTEM,
        "APP_IDENTITY_PRINCIPAL_ID": IDENTITY,
        "CROSS_TENANT_APP": "true",
    }

    def go(**extra: str) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
        done = subprocess.run(
            ["sh", str(SCRIPT)],
            env={**provisioned, **extra},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return done, fake_cli.calls(log)

    return go


def test_it_is_a_postprovision_hook_of_azd() -> None:
    hooks = yaml.safe_load((REPO / "azure.yaml").read_text(encoding="utf-8"))["hooks"]
    assert hooks["postprovision"]["run"] == "infra/scripts/ensure-cross-tenant-app.sh"


def test_nothing_happens_unless_asked(run: Any) -> None:
    done, calls = run(CROSS_TENANT_APP="")
    assert done.returncode == 0 and calls == []


def test_creates_a_multi_tenant_app_trusting_the_user_assigned_identity(run: Any) -> None:
    done, calls = run(FAKE_NEW_APP=APP)
    assert done.returncode == 0, done.stderr
    args = [c["args"] for c in calls]
    create = next(a for a in args if a[:3] == ["ad", "app", "create"])
    assert create[create.index("--sign-in-audience") + 1] == "AzureADMultipleOrgs"
    assert not any("credential" in a and "reset" in a for a in args), "no secret is ever made"
    assert ["ad", "sp", "create", "--id", APP, "--output", "none"] in args
    [federated] = [c for c in calls if c["args"][:4] == ["ad", "app", "federated-credential", "create"]]
    assert federated["body"]["issuer"] == f"https://login.microsoftonline.com/{TENANT}/v2.0"
    assert federated["body"]["subject"] == IDENTITY
    assert federated["body"]["audiences"] == ["api://AzureADTokenExchange"]
    assert ["env", "set", "CROSS_TENANT_APP_CLIENT_ID", APP] in args
    settings = next(a for a in args if a[:4] == ["functionapp", "config", "appsettings", "set"])
    assert f"CROSS_TENANT_APP_CLIENT_ID={APP}" in settings
    assert f"/adminconsent?client_id={APP}" in done.stdout


CREDENTIAL = f"https://login.microsoftonline.com/{TENANT}/v2.0\t{IDENTITY}\tapi://AzureADTokenExchange"


def test_an_existing_app_and_credential_are_reused(run: Any) -> None:
    done, calls = run(CROSS_TENANT_APP_CLIENT_ID=APP, FAKE_EXISTING_SP="sp", FAKE_CREDENTIAL=CREDENTIAL)
    assert done.returncode == 0, done.stderr
    args = [c["args"] for c in calls]
    assert not [a for a in args if a[:3] in (["ad", "app", "create"], ["ad", "sp", "create"])]
    assert not [a for a in args if a[:4] == ["ad", "app", "federated-credential", "create"]]


@pytest.mark.parametrize(
    "left", [CREDENTIAL.replace(IDENTITY, "someone-else"), CREDENTIAL.replace("TokenExchange", "TokenExchangeUSGov")]
)
def test_a_credential_for_another_identity_or_audience_is_replaced(run: Any, left: str) -> None:
    done, calls = run(CROSS_TENANT_APP_CLIENT_ID=APP, FAKE_EXISTING_SP="sp", FAKE_CREDENTIAL=left)
    assert done.returncode == 0, done.stderr
    verbs = [c["args"][3] for c in calls if c["args"][:3] == ["ad", "app", "federated-credential"]]
    assert verbs == ["list", "delete", "create"]


def test_an_app_is_never_picked_by_its_display_name(run: Any) -> None:
    done, calls = run(FAKE_NEW_APP=APP)
    assert done.returncode == 0, done.stderr
    assert not [c for c in calls if c["args"][:3] == ["ad", "app", "list"]]


def test_a_single_tenant_app_is_refused(run: Any) -> None:
    done, calls = run(CROSS_TENANT_APP_CLIENT_ID=APP, FAKE_APP_AUDIENCE="AzureADMyOrg")
    assert done.returncode == 1 and "AzureADMultipleOrgs" in done.stderr
    assert not [c for c in calls if c["args"][:4] == ["ad", "app", "federated-credential", "create"]]


def test_the_system_assigned_identity_is_refused(run: Any) -> None:
    done, calls = run(APP_IDENTITY_PRINCIPAL_ID=SYSTEM)
    assert done.returncode == 1
    assert "userAssignedIdentityName" in done.stderr
    assert calls == []
