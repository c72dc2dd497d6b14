"""Settings: every bad value is reported naming its variable; defaults are the real Azure ones."""

from __future__ import annotations

import json
from operator import attrgetter

import pytest

from services.errors import AccountNotFound, ConfigurationError
from services.settings import ArmTuning, InferenceTuning, StorageSettings, load_settings, setting_names

SUB = "11111111-1111-1111-1111-111111111111"
MAIN = {
    "subscriptionId": SUB,
    "resourceGroup": "rg",
    "accountName": "aoai-main",
    "endpoint": "https://aoai-main.openai.azure.com/",
}
EAST = {**MAIN, "accountName": "aoai-east", "endpoint": "https://aoai-east.openai.azure.com/"}
ONE = {"main": MAIN}
TWO = {"main": MAIN, "east": EAST}


def env(accounts: object = ONE, **extra: str) -> dict[str, str]:
    return {"AZURE_OPENAI_ACCOUNTS": accounts if isinstance(accounts, str) else json.dumps(accounts), **extra}


def refused(environment: dict[str, str]) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(environment)
    assert raised.value.status == 500
    assert raised.value.to_body()["error"]["code"] == "ConfigurationError"
    return raised.value


def test_defaults_are_real_azure() -> None:
    settings = load_settings(env())
    assert settings.arm_endpoint == "https://management.azure.com"
    assert settings.arm_scope == "https://management.azure.com/.default"
    assert settings.arm_api_version == "2024-10-01"
    assert settings.azure_openai_api_version == "2024-10-21"
    assert settings.azure_openai_scope == "https://cognitiveservices.azure.com/.default"
    assert settings.default_alias == "main"
    assert settings.account(None).arm_id == (
        f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/aoai-main"
    )
    assert settings.arm == ArmTuning()
    assert (settings.arm.max_wait_seconds, settings.arm.conflict_retry_seconds, settings.arm.pool_size) == (150, 45, 16)
    assert settings.inference == InferenceTuning()
    assert settings.inference.max_body_bytes == 32 * 1024 * 1024
    assert settings.blocking_threads == 32
    assert settings.auth_mode == "entra"
    assert settings.audit_table == "audit"
    assert settings.website_auth_enabled is False
    assert settings.website_instance_id is None
    assert settings.storage == StorageSettings()
    assert settings.appinsights_connection_string is None
    assert (settings.image_account, settings.image_deployment) == (None, None)


def test_blank_values_are_unset() -> None:
    """Azure often has settings present but empty: they give the defaults, not errors."""
    blank = {name: " " if index % 2 else "" for index, name in enumerate(sorted(setting_names()))}
    settings = load_settings({**blank, "AZURE_OPENAI_ACCOUNTS": json.dumps(ONE)})
    assert settings == load_settings(env())


def test_only_the_given_mapping_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOCKING_THREADS", "abc")
    monkeypatch.setenv("AUTH_MODE", "none")
    settings = load_settings(env(blocking_threads="7"))  # names are case-sensitive
    assert (settings.blocking_threads, settings.auth_mode) == (32, "entra")


def test_accounts_are_typed() -> None:
    settings = load_settings(
        env({**TWO, "east": {**EAST, "inferenceDeployments": ["gpt-4o"], "tenantId": SUB}}, DEFAULT_ACCOUNT="east")
    )
    east = settings.account(None)
    assert (east.alias, east.account_name, east.endpoint) == (
        "east",
        "aoai-east",
        "https://aoai-east.openai.azure.com/",
    )
    assert east.inference_deployments == ("gpt-4o",)
    assert east.tenant_id == SUB
    assert settings.account("main").alias == "main"
    assert settings.accounts["main"].tenant_id is None
    with pytest.raises(AccountNotFound) as raised:
        settings.account("mars")
    assert raised.value.status == 404
    assert "east, main" in raised.value.message


@pytest.mark.parametrize(
    ("environment", "fragment"),
    [
        ({}, "is not set"),
        (env("{oops"), "is not valid JSON"),
        (env([]), "JSON object of alias -> account"),
        (env({}), "JSON object of alias -> account"),
        (env({"main": "aoai-main"}), "AZURE_OPENAI_ACCOUNTS['main'] must be an object"),
        (env({"no spaces": MAIN}), "AZURE_OPENAI_ACCOUNTS['no spaces'] is not a valid alias"),
        (env({"main": {**MAIN, "accountKey": "x"}}), "AZURE_OPENAI_ACCOUNTS['main'] has unknown keys ['accountKey']"),
        (env({"main": {**MAIN, "subscriptionId": "not-a-guid"}}), "['main'].subscriptionId must be a GUID"),
        (env({"main": {**MAIN, "tenantId": "contoso"}}), "['main'].tenantId must be a GUID"),
        (env({"main": {k: v for k, v in MAIN.items() if k != "resourceGroup"}}), "resourceGroup is required"),
        (env({"main": {**MAIN, "accountName": "a b"}}), "['main'].accountName must be"),
        (env({"main": {**MAIN, "endpoint": "ftp://x"}}), "https://aoai-main.openai.azure.com/"),
        (env({"main": {**MAIN, "inferenceDeployments": "*"}}), 'a list of deployment names, or ["*"]'),
    ],
)
def test_bad_accounts_name_the_setting_and_the_key(environment: dict[str, str], fragment: str) -> None:
    error = refused(environment)
    assert error.target == "AZURE_OPENAI_ACCOUNTS"
    assert error.message.startswith("AZURE_OPENAI_ACCOUNTS")
    assert fragment in error.message


def test_bad_guid_message() -> None:
    error = refused(env({"main": {**MAIN, "subscriptionId": "not-a-guid"}}))
    assert error.message == (
        "AZURE_OPENAI_ACCOUNTS['main'].subscriptionId must be a GUID, e.g. 00000000-0000-0000-0000-000000000000; "
        "got 'not-a-guid'."
    )


def test_several_accounts_need_a_default() -> None:
    error = refused(env(TWO))
    assert error.target == "DEFAULT_ACCOUNT"
    assert "several accounts (east, main)" in error.message
    assert load_settings(env(TWO, DEFAULT_ACCOUNT="east")).default_alias == "east"


def test_default_account_must_be_an_alias() -> None:
    error = refused(env(TWO, DEFAULT_ACCOUNT="west"))
    assert error.target == "DEFAULT_ACCOUNT"
    assert error.message == "DEFAULT_ACCOUNT must be an alias in AZURE_OPENAI_ACCOUNTS (east, main); got 'west'."


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("ARM_ENDPOINT", "management.azure.com", "must be an http(s) URL, e.g. https://management.azure.com"),
        ("ARM_SCOPE", "management", "must be an http(s) URL"),
        ("AZURE_OPENAI_SCOPE", "cognitiveservices", "must be an http(s) URL"),
        ("AzureWebJobsStorage__tableServiceUri", "table", "must be an http(s) URL"),
        ("ARM_API_VERSION", "latest", "YYYY-MM-DD, optionally -preview, e.g. 2024-10-01; got 'latest'"),
        ("AZURE_OPENAI_API_VERSION", "2024-10", "e.g. 2024-10-21"),
        ("AUDIT_TABLE", "audit-trail", "3-63 letters or digits"),
        ("AUTH_MODE", "anonymous", "must be entra, keys or none; got 'anonymous'"),
        ("IMAGE_ANALYSIS_ACCOUNT", "west", "must be an alias in AZURE_OPENAI_ACCOUNTS (main)"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str, fragment: str) -> None:
    error = refused(env(**{name: value}))
    assert error.target == name
    assert error.message.startswith(f"{name} ")
    assert fragment in error.message


# name, bounds, whole number?, where the code reads it
TUNING = [
    ("MAX_WAIT_SECONDS", 0, 180, True, "arm.max_wait_seconds"),
    ("ARM_TIMEOUT_SECONDS", 1, 120, False, "arm.timeout_seconds"),
    ("ARM_CONNECT_TIMEOUT_SECONDS", 0.1, 60, False, "arm.connect_timeout_seconds"),
    ("ARM_RETRY_TOTAL", 0, 10, True, "arm.retry_total"),
    ("ARM_RETRY_BACKOFF_SECONDS", 0, 30, False, "arm.retry_backoff_seconds"),
    ("ARM_RETRY_BACKOFF_MAX_SECONDS", 0, 120, False, "arm.retry_backoff_max_seconds"),
    ("ARM_RETRY_BUDGET_SECONDS", 0, 120, False, "arm.retry_budget_seconds"),
    ("ARM_CONFLICT_RETRY_SECONDS", 0, 120, False, "arm.conflict_retry_seconds"),
    ("ARM_POLL_INTERVAL_SECONDS", 0.05, 60, False, "arm.poll_interval_seconds"),
    ("ARM_POOL_SIZE", 1, 256, True, "arm.pool_size"),
    ("BLOCKING_THREADS", 1, 256, True, "blocking_threads"),
    ("INFERENCE_TIMEOUT_SECONDS", 1, 225, False, "inference.timeout_seconds"),
    ("INFERENCE_MAX_BODY_BYTES", 1024, 100 * 1024 * 1024, True, "inference.max_body_bytes"),
    ("INFERENCE_RETRY_MAX_WAIT_MS", 0, 10_000, True, "inference.retry_max_wait_ms"),
    ("INFERENCE_POOL_SIZE", 1, 1000, True, "inference.pool_size"),
    ("REDIS_TIMEOUT_SECONDS", 0.05, 10, False, "redis_timeout_seconds"),
    ("USAGE_FLUSH_SECONDS", 0.05, 10, False, "usage_flush_seconds"),
    ("KEEPALIVE_AFTER_DAYS", 1, 14, True, "keepalive_after_days"),
    ("QUEUE_RECHECK_SECONDS", 1, 600, True, "queue_recheck_seconds"),
]


# Tuning settings that are not a number within bounds (tested with their capability).
NOT_NUMBERS = {"PRICE_TABLE"}


def test_tuning_table_covers_every_tuning_setting() -> None:
    assert {name for name, *_ in TUNING} == setting_names("tuning") - NOT_NUMBERS


@pytest.mark.parametrize(("name", "low", "high", "whole", "attribute"), TUNING)
@pytest.mark.parametrize("where", ["below", "above", "not a number"])
def test_tuning_bounds_name_the_variable(
    name: str, low: float, high: float, whole: bool, attribute: str, where: str
) -> None:
    value = {"below": str(low - 1), "above": str(high + 1), "not a number": "soon"}[where]
    error = refused(env(**{name: value}))
    assert error.target == name
    number = "a whole number" if whole else "a number"
    assert error.message == f"{name} must be {number} from {low} to {high}; got '{value}'."


@pytest.mark.parametrize(("name", "low", "high", "whole", "attribute"), TUNING)
def test_tuning_bounds_are_inclusive_and_reach_the_code(
    name: str, low: float, high: float, whole: bool, attribute: str
) -> None:
    for value in (low, high):
        read = attrgetter(attribute)(load_settings(env(**{name: str(value)})))
        assert read == value
        assert isinstance(read, int if whole else float)


def test_tuning_overrides_reach_the_clients() -> None:
    settings = load_settings(
        env(ARM_CONFLICT_RETRY_SECONDS="3", ARM_RETRY_TOTAL="2", MAX_WAIT_SECONDS="30", INFERENCE_POOL_SIZE="8")
    )
    assert settings.arm == ArmTuning(conflict_retry_seconds=3, retry_total=2, max_wait_seconds=30)
    assert settings.inference == InferenceTuning(pool_size=8)


def test_a_fractional_count_is_refused() -> None:
    error = refused(env(BLOCKING_THREADS="2.5"))
    assert error.message == "BLOCKING_THREADS must be a whole number from 1 to 256; got '2.5'."


def test_blocking_threads_not_a_number() -> None:
    error = refused(env(BLOCKING_THREADS="abc"))
    assert error.target == "BLOCKING_THREADS"
    assert error.message == "BLOCKING_THREADS must be a whole number from 1 to 256; got 'abc'."
    assert load_settings(env(BLOCKING_THREADS="64")).blocking_threads == 64


@pytest.mark.parametrize(("value", "mode"), [("entra", "entra"), ("KEYS", "keys"), (" None ", "none"), ("", "entra")])
def test_auth_mode_any_case(value: str, mode: str) -> None:
    assert load_settings(env(AUTH_MODE=value)).auth_mode == mode


@pytest.mark.parametrize(("value", "enabled"), [("True", True), ("true", True), ("False", False), ("yes", False)])
def test_platform_authentication_flag(value: str, enabled: bool) -> None:
    assert load_settings(env(WEBSITE_AUTH_ENABLED=value)).website_auth_enabled is enabled


def test_legacy_image_settings() -> None:
    settings = load_settings(
        env(TWO, DEFAULT_ACCOUNT="main", GPT4V_ENDPOINT="https://AOAI-EAST.openai.azure.com", GPT4V_DEPLOYMENT="gpt4v")
    )
    assert (settings.image_account, settings.image_deployment) == ("east", "gpt4v")


def test_current_image_settings_win_over_legacy_ones() -> None:
    settings = load_settings(
        env(
            TWO,
            DEFAULT_ACCOUNT="main",
            IMAGE_ANALYSIS_ACCOUNT="main",
            IMAGE_ANALYSIS_DEPLOYMENT="gpt-4o",
            GPT4V_ENDPOINT="https://aoai-east.openai.azure.com/",
            GPT4V_DEPLOYMENT="gpt4v",
        )
    )
    assert (settings.image_account, settings.image_deployment) == ("main", "gpt-4o")


def test_legacy_endpoint_of_no_account() -> None:
    error = refused(env(GPT4V_ENDPOINT="https://elsewhere.openai.azure.com/"))
    assert error.target == "GPT4V_ENDPOINT"
    assert error.message.startswith("GPT4V_ENDPOINT must be the endpoint of an account in AZURE_OPENAI_ACCOUNTS")
    assert error.message.endswith("got 'https://elsewhere.openai.azure.com/'.")


def test_storage_settings_and_secrets_stay_out_of_reprs() -> None:
    key = "AccountKey=c2VjcmV0"  # pragma: allowlist secret
    secret = f"DefaultEndpointsProtocol=https;AccountName=st;{key};EndpointSuffix=core.windows.net"
    settings = load_settings(
        env(
            AzureWebJobsStorage=secret,
            AzureWebJobsStorage__tableServiceUri="https://st.table.core.windows.net",
            AzureWebJobsStorage__accountName="st",
            AzureWebJobsStorage__credential="managedidentity",
            AzureWebJobsStorage__clientId=SUB,
            APPLICATIONINSIGHTS_CONNECTION_STRING="InstrumentationKey=k;IngestionEndpoint=https://x",
            AUDIT_TABLE="trail",
        )
    )
    assert settings.storage == StorageSettings(
        secret, "https://st.table.core.windows.net", "st", "managedidentity", SUB
    )
    assert settings.audit_table == "trail"
    assert settings.appinsights_connection_string == "InstrumentationKey=k;IngestionEndpoint=https://x"
    assert "c2VjcmV0" not in repr(settings) + repr(settings.storage) + str(settings)
    assert "InstrumentationKey" not in repr(settings)


# A valid value other than the default for every setting: proves each name is read and lands somewhere.
SAMPLES = {
    "AZURE_OPENAI_ACCOUNTS": json.dumps({**TWO, "west": {**MAIN, "accountName": "aoai-west"}}),
    "DEFAULT_ACCOUNT": "east",
    "ARM_ENDPOINT": "https://management.usgovcloudapi.net",
    "ARM_SCOPE": "https://management.usgovcloudapi.net/.default",
    "ARM_API_VERSION": "2025-06-01",
    "AZURE_OPENAI_API_VERSION": "2025-01-01-preview",
    "AZURE_OPENAI_SCOPE": "https://cognitiveservices.azure.us/.default",
    "IMAGE_ANALYSIS_ACCOUNT": "main",
    "IMAGE_ANALYSIS_DEPLOYMENT": "gpt-4o",
    "GPT4V_ENDPOINT": "https://aoai-east.openai.azure.com/",
    "GPT4V_DEPLOYMENT": "gpt4v",
    "AUTH_MODE": "keys",
    "AUDIT_TABLE": "trail",
    "HOME_TENANT_ID": SUB,
    "CROSS_TENANT_APP_CLIENT_ID": SUB,
    "AZURE_CLIENT_ID": SUB,
    "AZURE_AUTHORITY_HOST": "https://login.microsoftonline.us",
    "WEBSITE_AUTH_ENABLED": "True",
    "WEBSITE_INSTANCE_ID": "abc123",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "AzureWebJobsStorage__tableServiceUri": "https://st.table.core.windows.net",
    "AzureWebJobsStorage__accountName": "st",
    "AzureWebJobsStorage__credential": "managedidentity",
    "AzureWebJobsStorage__clientId": SUB,
    "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=k",
    "FOUNDRY_PROJECTS": json.dumps({"ml": {"subscriptionId": SUB, "resourceGroup": "rg-ml", "workspaceName": "proj"}}),
    "DEFAULT_PROJECT": "ml2",
    "ML_ARM_API_VERSION": "2025-06-01",
    "INFERENCE_LIMITS": '[{"caller": "*", "deployment": "main/*", "tokensPerMinute": 1000}]',
    "INFERENCE_GROUPS": '{"chat": [{"account": "main", "deployment": "chat"}]}',
    "REDIS_HOST": "cache.swedencentral.redis.azure.net:10000",
    "LIMITS_WHEN_STORE_DOWN": "closed",
    "USAGE_TABLE": "chargeback",
    "REDIS_PASSWORD": "local-only",  # pragma: allowlist secret
    "REDIS_SSL": "false",
    "DEPLOYMENT_REQUESTS_QUEUE": "deploy-in",
    "DEPLOYMENT_RESULTS_QUEUE": "deploy-out",
    "SWEEP_SCHEDULE": "0 0 * * * *",
    "METRICS_API_VERSION": "2024-02-01",
    "DEPLOYMENT_WORK_TABLE": "work",
    "AzureWebJobsStorage__queueServiceUri": "https://st.queue.core.windows.net",
    **{name: str(high) for name, _, high, *_ in TUNING},
    "PRICE_TABLE": json.dumps(
        {"currency": "EUR", "source": "https://example.com/prices", "checked": "2026-11-30", "hosting": {}}
    ),
}


def test_setting_names_are_the_models() -> None:
    assert set(SAMPLES) == setting_names()
    assert setting_names("legacy") == {"GPT4V_ENDPOINT", "GPT4V_DEPLOYMENT"}
    assert {"AZURE_OPENAI_ACCOUNTS", "AUTH_MODE", "AUDIT_TABLE"} <= setting_names("service")
    assert "AzureWebJobsStorage__tableServiceUri" in setting_names("platform")
    groups = ("service", "tuning", "platform", "legacy")
    assert set().union(*(setting_names(group) for group in groups)) == setting_names()


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_setting_is_read(name: str) -> None:
    baseline = env(TWO, DEFAULT_ACCOUNT="main")
    if name == "DEFAULT_PROJECT":  # it names one of the projects, so it needs them
        project = json.loads(SAMPLES["FOUNDRY_PROJECTS"])["ml"]
        baseline.update(FOUNDRY_PROJECTS=json.dumps({"ml": project, "ml2": project}), DEFAULT_PROJECT="ml")
    changed = load_settings({**baseline, name: SAMPLES[name]})
    assert changed.model_dump() != load_settings(baseline).model_dump()
