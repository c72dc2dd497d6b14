"""App settings: the template sets every setting the code needs, and only settings someone reads.

What the code reads is the `services.settings.Settings` model: `setting_names()` lists its variables, by group
("service": set by infra/, "tuning": operator overrides, "platform", "legacy").
"""

from __future__ import annotations

import json

import pytest

from services import settings as app_settings

from .bicep_tools import (
    INFRA,
    Json,
    ObjectKeys,
    body,
    object_keys,
    param_default,
    parse_bicepparam,
    setting_value,
    template,
)
from .bicep_tools import setting_names as bicep_setting_names

# Read by the Functions host, the platform or azure-identity, not by services/.
HOST_SETTINGS = frozenset(
    {
        "AzureWebJobsStorage__blobServiceUri",
        "AzureWebJobsStorage__queueServiceUri",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        "PYTHON_ENABLE_INIT_INDEXING",
        "AZURE_CLIENT_ID",
        "AZURE_TOKEN_CREDENTIALS",
    }
)

# Flex Consumption rejects or ignores these, and AzureWebJobsStorage as a connection string would need a key.
NOT_ON_FLEX = frozenset(
    {
        "AzureWebJobsStorage",
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_EXTENSION_VERSION",
        "WEBSITE_RUN_FROM_PACKAGE",
        "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
        "WEBSITE_CONTENTSHARE",
        "SCM_DO_BUILD_DURING_DEPLOYMENT",
        "ENABLE_ORYX_BUILD",
        "FUNCTIONS_WORKER_PROCESS_COUNT",
        "WEBSITE_TIME_ZONE",
        "TZ",
    }
)


def _service_settings_literal() -> dict[str, Json]:
    """The object literal of the service's settings in main.bicep: union(appTuningSettings, {...})."""
    args = template("main.bicep")["variables"]["appSettings"]["value"]["function"]["parameters"]
    assert args["arg_1"] == "appTuningSettings", "tuning overrides first, so they cannot replace these"
    literal: dict[str, Json] = args["arg_2"]
    return literal


def _site_settings() -> ObjectKeys:
    """Names in the site's siteConfig.appSettings (function-app.bicep)."""
    doc = template("modules/function-app.bicep")
    site = next(r for r in doc["resources"].values() if r["type"] == "Microsoft.Web/sites")
    return bicep_setting_names(doc, body(site)["properties"]["siteConfig"]["appSettings"])


def _service_settings() -> ObjectKeys:
    """Keys main.bicep passes to the module as appSettings."""
    main = template("main.bicep")
    return object_keys(main, body(main["modules"]["app"])["params"]["appSettings"])


@pytest.fixture(scope="module")
def settings_set() -> frozenset[str]:
    site, service = _site_settings(), _service_settings()
    # The only settings with keys unknown here: the service's own (from main.bicep) and the tuning overrides.
    assert site.from_params == {"appSettings"}
    assert service.from_params == {"appTuningSettings"}
    return site.keys | service.keys


def test_every_service_setting_is_set(settings_set: frozenset[str]) -> None:
    missing = app_settings.setting_names("service") - settings_set
    assert not missing, f"service settings of services.settings.Settings not set by infra/: {sorted(missing)}"


def test_every_setting_is_read_by_someone(settings_set: frozenset[str]) -> None:
    known = app_settings.setting_names() | HOST_SETTINGS
    unknown = settings_set - known
    assert not unknown, f"set by infra/ but read by nobody (or missing from services.settings): {sorted(unknown)}"


def test_legacy_names_are_not_set(settings_set: frozenset[str]) -> None:
    assert not settings_set & app_settings.setting_names("legacy"), "infra/ sets the current names"


def test_auth_and_audit_settings_are_set(settings_set: frozenset[str]) -> None:
    assert settings_set >= {"AUTH_MODE", "AUDIT_TABLE"}
    main = template("main.bicep")
    assert param_default(main, "authMode") == "entra"
    assert param_default(main, "auditTableName") == "audit"
    # The table the storage module creates is the one AUDIT_TABLE names.
    assert body(main["modules"]["storage"])["params"]["auditTableName"] == "auditTableName"
    assert _service_settings_literal()["AUDIT_TABLE"] == "auditTableName"
    assert _service_settings_literal()["AUTH_MODE"] == "authMode"


def test_no_settings_flex_consumption_rejects(settings_set: frozenset[str]) -> None:
    assert not settings_set & NOT_ON_FLEX


def test_platform_settings_are_keyless() -> None:
    doc = template("modules/function-app.bicep")
    platform = bicep_setting_names(doc, "platformSettings").keys
    assert setting_value(doc, "platformSettings", "AzureWebJobsStorage__credential") == "managedidentity"
    for service in ("blob", "queue", "table"):
        uri = setting_value(doc, "platformSettings", f"AzureWebJobsStorage__{service}ServiceUri")
        assert uri.startswith("https://") and f".{service}.${{storageSuffix}}" in uri
    auth = setting_value(doc, "platformSettings", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING")["operator"]["operands"]
    assert auth["false_value"] == "Authorization=AAD"
    assert auth["true_value"].startswith("ClientId=${") and auth["true_value"].endswith(";Authorization=AAD")
    assert setting_value(doc, "platformSettings", "PYTHON_ENABLE_INIT_INDEXING") == "1"
    assert setting_value(doc, "platformSettings", "AZURE_TOKEN_CREDENTIALS") == "ManagedIdentityCredential"
    user_assigned = bicep_setting_names(doc, "userAssignedIdentitySettings").keys
    assert user_assigned == {"AzureWebJobsStorage__clientId", "AZURE_CLIENT_ID"}
    assert not platform & user_assigned, "one name, one value"
    assert "AzureWebJobsStorage" not in platform, "the connection-string form would need a key"


def test_service_settings_do_not_collide_with_platform_settings(settings_set: frozenset[str]) -> None:
    doc = template("modules/function-app.bicep")
    platform = (
        bicep_setting_names(doc, "platformSettings").keys
        | bicep_setting_names(doc, "userAssignedIdentitySettings").keys
    )
    assert not _service_settings().keys & platform
    # Tuning overrides may only name tuning settings (main.bicep documents it; the example files obey it).
    assert 'setting_names("tuning")' in str(template("main.bicep")["parameters"]["appTuningSettings"]["decorators"])


def test_template_defaults_are_the_code_defaults() -> None:
    main = template("main.bicep")
    assert param_default(main, "armApiVersion") == app_settings.DEFAULT_ARM_API_VERSION
    assert param_default(main, "azureOpenAiApiVersion") == app_settings.DEFAULT_AZURE_OPENAI_API_VERSION
    assert param_default(main, "azureOpenAiScope") == app_settings.DEFAULT_AZURE_OPENAI_SCOPE
    # ARM endpoint and scope follow the cloud the template is deployed to.
    assert param_default(main, "armScope") == "${environment().resourceManager}.default"


def _accounts_setting(values: dict[str, Json]) -> str:
    """AZURE_OPENAI_ACCOUNTS as main.bicep builds it: union(sourceOpenAiAccounts, openAiAccounts)."""
    as_string = _service_settings_literal()["AZURE_OPENAI_ACCOUNTS"]["function"]
    assert as_string["type"] == "string", "the setting is the JSON text of the accounts object"
    union = as_string["parameters"]["value_to_convert"]["function"]
    assert union["type"] == "union"
    assert list(union["parameters"].values()) == ["sourceOpenAiAccounts", "openAiAccounts"]
    return json.dumps({**values.get("sourceOpenAiAccounts", {}), **values["openAiAccounts"]})


def test_example_parameters_give_settings_the_code_accepts() -> None:
    """infra/main.bicepparam, turned into app settings as the template does, loads with services.settings."""
    values = parse_bicepparam(INFRA / "main.bicepparam").values
    env = {
        "AZURE_OPENAI_ACCOUNTS": _accounts_setting(values),
        "DEFAULT_ACCOUNT": values.get("defaultAccount", ""),
        # What the template's defaults give in the public cloud (environment().resourceManager).
        "ARM_ENDPOINT": "https://management.azure.com/",
        "ARM_SCOPE": "https://management.azure.com/.default",
        "ARM_API_VERSION": param_default(template("main.bicep"), "armApiVersion"),
        "AZURE_OPENAI_API_VERSION": param_default(template("main.bicep"), "azureOpenAiApiVersion"),
        "AZURE_OPENAI_SCOPE": param_default(template("main.bicep"), "azureOpenAiScope"),
    }
    loaded = app_settings.load_settings(env)
    assert set(loaded.accounts) == set(values["openAiAccounts"]) | set(values.get("sourceOpenAiAccounts", {}))
    assert loaded.arm_endpoint == "https://management.azure.com"
    tuning = values.get("appTuningSettings", {})
    assert set(tuning) <= app_settings.setting_names("tuning")
