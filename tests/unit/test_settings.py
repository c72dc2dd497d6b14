"""Settings: every bad value is reported naming the setting; defaults are the real Azure ones."""

from __future__ import annotations

import json

import pytest

from services import settings as settings_module
from services.errors import ConfigurationError
from services.settings import get_settings, load_settings, reset_settings_cache

SUB = "11111111-1111-1111-1111-111111111111"
ONE = {"main": {"subscriptionId": SUB, "resourceGroup": "rg", "accountName": "aoai-main"}}


def env(accounts: object = ONE, **extra: str) -> dict[str, str]:
    return {"AZURE_OPENAI_ACCOUNTS": accounts if isinstance(accounts, str) else json.dumps(accounts), **extra}


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


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({}, "AZURE_OPENAI_ACCOUNTS"),
        (env("{oops"), "AZURE_OPENAI_ACCOUNTS"),
        (env([]), "AZURE_OPENAI_ACCOUNTS"),
        (env({"main": {"resourceGroup": "rg", "accountName": "a"}}), "subscriptionId"),
        (env({"main": {**ONE["main"], "subscriptionId": "not-a-guid"}}), "subscriptionId"),
        (env({"main": {**ONE["main"], "accountKey": "x"}}), "unknown keys"),
        (env({"main": {**ONE["main"], "endpoint": "ftp://x"}}), "endpoint"),
        (env({"main": {**ONE["main"], "inferenceDeployments": "*"}}), "inferenceDeployments"),
        (env({"a": ONE["main"], "b": ONE["main"]}), "DEFAULT_ACCOUNT"),
        (env(DEFAULT_ACCOUNT="other"), "DEFAULT_ACCOUNT"),
        (env(ARM_ENDPOINT="management.azure.com"), "ARM_ENDPOINT"),
        (env(ARM_API_VERSION="latest"), "ARM_API_VERSION"),
        (env(ARM_TIMEOUT_SECONDS="fast"), "ARM_TIMEOUT_SECONDS"),
        (env(MAX_WAIT_SECONDS="600"), "MAX_WAIT_SECONDS"),
    ],
)
def test_bad_settings_name_the_setting(environment: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(environment)
    assert raised.value.status == 500
    assert named in raised.value.message


def test_bad_setting_is_logged_once_and_raised_every_time(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("AZURE_OPENAI_ACCOUNTS", raising=False)
    reset_settings_cache()
    try:
        for _ in range(3):
            with pytest.raises(ConfigurationError):
                get_settings()
        logged = [
            r for r in caplog.records if r.name == settings_module.__name__ and "AZURE_OPENAI_ACCOUNTS" in r.message
        ]
        assert len(logged) == 1
    finally:
        reset_settings_cache()


def test_tuning_overrides() -> None:
    settings = load_settings(env(ARM_CONFLICT_RETRY_SECONDS="3", ARM_RETRY_TOTAL="2", MAX_WAIT_SECONDS="30"))
    assert settings.arm.conflict_retry_seconds == 3
    assert settings.arm.retry_total == 2
    assert settings.arm.max_wait_seconds == 30


def test_every_setting_the_code_reads_is_registered() -> None:
    """APP_SETTINGS is what infra and the README rely on; a setting read anywhere else must be listed."""
    import re
    from pathlib import Path

    from services.settings import APP_SETTINGS

    root = Path(__file__).resolve().parents[2]
    sources = [root / "function_app.py", *sorted((root / "services").glob("*.py"))]
    pattern = re.compile(
        r"""(?:environ\.get|env\.get|_number\(env,|_url\(env,|_api_version\(env,)\s*\(?\s*["']([A-Za-z][A-Za-z0-9_]+)["']"""
    )
    read = {name for path in sources for name in pattern.findall(path.read_text(encoding="utf-8"))}
    assert read, "the pattern found no settings: it is out of date"
    assert read <= set(APP_SETTINGS), sorted(read - set(APP_SETTINGS))
    assert {"AZURE_OPENAI_ACCOUNTS", "ARM_CONFLICT_RETRY_SECONDS", "BLOCKING_THREADS", "AzureWebJobsStorage"} <= read
