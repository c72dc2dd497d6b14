"""Distributed tracing to Application Insights: the ARM pipeline's spans, and the requests they belong to.

When `APPLICATIONINSIGHTS_CONNECTION_STRING` is set (infra/ sets it in Azure), the Azure Monitor
OpenTelemetry distro is configured once per process with the app's own credential (Application Insights
runs with local authentication off, so ingestion is authenticated with Microsoft Entra ID), and azure-core
is told to trace through OpenTelemetry: every ARM call becomes a dependency span with its correlation ids.
Without the setting nothing is imported and tracing costs nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .settings import Settings

log = logging.getLogger(__name__)
_configured = False
_lock = threading.Lock()


def configure_tracing(settings: Settings, credential: Callable[[], Any]) -> bool:
    """Send traces to Application Insights when a connection string is set; True when it is now configured."""
    global _configured
    connection_string = settings.appinsights_connection_string
    if not connection_string:
        return False
    with _lock:
        if _configured:
            return True
        try:
            from azure.core.settings import settings as azure_settings
            from azure.monitor.opentelemetry import configure_azure_monitor
        except ImportError:
            log.warning("APPLICATIONINSIGHTS_CONNECTION_STRING is set, but azure-monitor-opentelemetry is missing.")
            return False
        configure_azure_monitor(connection_string=connection_string, credential=credential())
        azure_settings.tracing_implementation = "opentelemetry"
        _configured = True
        log.info("Traces go to Application Insights (Entra-authenticated ingestion).")
        return True
