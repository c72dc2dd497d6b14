"""The properties that matter, asserted on the parsed templates: identity, no keys, HTTPS/TLS, authentication."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .bicep_tools import REPO, Json, body, param_default, resource, resources, template, walk

# Anything that would put a key, a key-bearing connection string or a client secret into the delivery files.
FORBIDDEN = [
    re.compile(r"AccountKey=", re.IGNORECASE),
    re.compile(r"SharedAccessKey=|SharedAccessSignature=", re.IGNORECASE),
    re.compile(r"\blistKeys\b|\blistAccountSas\b|\blistServiceSas\b", re.IGNORECASE),
    re.compile(r"\bclient-secret\s*:|\bcreds\s*:|\bpublish-profile\s*:", re.IGNORECASE),
    re.compile(r"AZURE_CLIENT_SECRET|clientSecretSettingName|UseDevelopmentStorage", re.IGNORECASE),
    re.compile(r"DefaultEndpointsProtocol=", re.IGNORECASE),
]


def _delivery_files() -> list[Path]:
    files = [p for p in (REPO / "infra").rglob("*") if p.is_file()]
    files += sorted((REPO / ".github" / "workflows").glob("*.yml"))
    files.append(REPO / "azure.yaml")
    return files


@pytest.mark.parametrize("path", _delivery_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_keys_or_secrets(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for pattern in FORBIDDEN:
        match = pattern.search(text)
        assert match is None, f"{path.relative_to(REPO)}: {match.group(0)!r} (no keys or secrets anywhere)"


def _conditional(value: Json) -> tuple[Json, Json]:
    operands = value["operator"]["operands"]
    return operands["true_value"], operands["false_value"]


@pytest.fixture(scope="module")
def function_app() -> dict[str, Json]:
    return template("modules/function-app.bicep")


def test_storage_is_keyless_and_private() -> None:
    doc = template("modules/storage.bicep")
    account = body(resource(doc, "Microsoft.Storage/storageAccounts"))
    props = account["properties"]
    assert props["allowSharedKeyAccess"] is False
    assert props["defaultToOAuthAuthentication"] is True
    assert props["allowBlobPublicAccess"] is False
    assert props["allowCrossTenantReplication"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["supportsHttpsTrafficOnly"] is True
    container = body(resource(doc, "Microsoft.Storage/storageAccounts/blobServices/containers"))
    assert container["properties"]["publicAccess"] == "None"
    tables = resources(doc, "Microsoft.Storage/storageAccounts/tableServices/tables").values()
    assert sorted(body(table)["name"] for table in tables) == ["auditTableName", "usageTableName", "workTableName"]
    defaults = (param_default(doc, name) for name in ("auditTableName", "usageTableName", "workTableName"))
    assert tuple(defaults) == ("audit", "usage", "deploymentwork")


def test_function_app_on_flex_consumption_with_python(function_app: dict[str, Json]) -> None:
    plan = body(resource(function_app, "Microsoft.Web/serverfarms"))
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["properties"]["reserved"] is True
    site = body(resource(function_app, "Microsoft.Web/sites"))
    assert site["kind"] == "functionapp,linux"
    runtime = site["properties"]["functionAppConfig"]["runtime"]
    assert runtime == {"name": "python", "version": "pythonVersion"}
    assert param_default(function_app, "pythonVersion") == "3.11"
    assert param_default(template("main.bicep"), "pythonVersion") == "3.11"


def test_managed_identity_is_on(function_app: dict[str, Json]) -> None:
    site = body(resource(function_app, "Microsoft.Web/sites"))
    with_user_assigned, system_only = _conditional(site["identity"]["type"])
    assert system_only == "SystemAssigned"
    assert with_user_assigned == "SystemAssigned, UserAssigned"
    # The deployment package is read with an identity in both cases, never with a connection string.
    user, system = _conditional(site["properties"]["functionAppConfig"]["deployment"]["storage"]["authentication"])
    assert system == {"type": "SystemAssignedIdentity"}
    assert user["type"] == "UserAssignedIdentity"


def test_https_only_tls12_no_ftp(function_app: dict[str, Json]) -> None:
    site = body(resource(function_app, "Microsoft.Web/sites"))
    props = site["properties"]
    assert props["httpsOnly"] is True
    config = props["siteConfig"]
    assert config["minTlsVersion"] == "1.2"
    assert config["scmMinTlsVersion"] == "1.2"
    assert config["ftpsState"] == "Disabled"
    assert "linuxFxVersion" not in config, "Flex Consumption takes the runtime from functionAppConfig"
    policies = resources(function_app, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert {body(p)["name"]: body(p)["properties"]["allow"] for p in policies.values()} == {"ftp": False, "scm": False}


def test_app_service_authentication_requires_entra_tokens(function_app: dict[str, Json]) -> None:
    auth = body(resource(function_app, "Microsoft.Web/sites/config"))
    assert auth["name"] == "authsettingsV2"
    props = auth["properties"]
    assert props["platform"]["enabled"] is True
    assert props["globalValidation"]["requireAuthentication"] is True
    assert props["globalValidation"]["unauthenticatedClientAction"] == "Return401"
    assert props["globalValidation"]["excludedPaths"] == "authExcludedPaths"
    assert props["httpSettings"]["requireHttps"] is True
    assert props["login"]["tokenStore"]["enabled"] is False
    entra = props["identityProviders"]["azureActiveDirectory"]
    assert entra["enabled"] is True
    assert entra["registration"]["clientId"] == "authClientId"
    assert entra["registration"]["openIdIssuer"].endswith("${authTenantId}/v2.0")
    assert "environment().authentication.loginEndpoint" in entra["registration"]["openIdIssuer"]
    assert "clientSecretSettingName" not in entra["registration"]
    assert entra["validation"]["allowedAudiences"] == "authAllowedAudiences"

    main = template("main.bicep")
    assert param_default(main, "authExcludedPaths") == ["/api/openapi.json"]
    app_params = body(main["modules"]["app"])["params"]
    assert app_params["authAllowedAudiences"] == ["api://${authClientId}", "authClientId"]
    assert param_default(main, "authMode") == "entra"


def test_monitoring_accepts_only_entra_telemetry() -> None:
    doc = template("modules/monitoring.bicep")
    insights = body(resource(doc, "Microsoft.Insights/components"))
    assert insights["properties"]["DisableLocalAuth"] is True
    assert insights["properties"]["WorkspaceResourceId"]
    workspace = body(resource(doc, "Microsoft.OperationalInsights/workspaces"))
    assert workspace["properties"]["features"]["disableLocalAuth"] is True


def test_no_registry_or_remote_code_at_deploy_time() -> None:
    """Every module is a local file, so what the tests and checkov read is what gets deployed."""
    for relative in ("main.bicep", "models/main.bicep", "modules/function-app.bicep"):
        for name, module in template(relative).get("modules", {}).items():
            assert module["type"] == "local", f"{relative}: module {name}"
    for value in walk(template("main.bicep")):
        if isinstance(value, str):
            assert not value.startswith("br:") and not value.startswith("ts:"), value
