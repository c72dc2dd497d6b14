"""Without an Application Insights connection string, tracing costs nothing (tests/e2e has the other case)."""

from __future__ import annotations

import json
import sys

from services.settings import load_settings
from services.telemetry import configure_tracing

ACCOUNTS = {
    "main": {"subscriptionId": "11111111-1111-1111-1111-111111111111", "resourceGroup": "rg", "accountName": "aoai"}
}


def test_without_a_connection_string_nothing_is_configured() -> None:
    settings = load_settings({"AZURE_OPENAI_ACCOUNTS": json.dumps(ACCOUNTS)})
    assert configure_tracing(settings, lambda: None) is False
    assert "azure.monitor.opentelemetry" not in sys.modules
