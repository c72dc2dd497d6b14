"""With an Application Insights connection string, Azure SDK spans go to Azure Monitor (in a child process:
the distro installs process-wide providers)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = {
    "main": {"subscriptionId": "11111111-1111-1111-1111-111111111111", "resourceGroup": "rg", "accountName": "aoai"}
}


def test_with_a_connection_string_azure_sdk_spans_go_to_azure_monitor() -> None:
    """The exporter is Azure Monitor's, it is given the app's credential (local auth is off in Azure), and
    azure-core traces through OpenTelemetry."""
    script = textwrap.dedent(
        f"""
        import json
        from opentelemetry import trace
        from services.settings import load_settings
        from services.telemetry import configure_tracing

        class Credential:
            def get_token(self, *scopes, **kwargs): raise RuntimeError("not called in this test")

        settings = load_settings({{
            "AZURE_OPENAI_ACCOUNTS": {json.dumps(json.dumps(ACCOUNTS))},
            "APPLICATIONINSIGHTS_CONNECTION_STRING":
                "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/",
        }})
        assert configure_tracing(settings, Credential) is True
        assert configure_tracing(settings, Credential) is True  # once per process
        from azure.core.settings import settings as azure_settings
        provider = trace.get_tracer_provider()
        processors = provider._active_span_processor._span_processors
        exporters = [type(getattr(p, "span_exporter", None)).__name__ for p in processors]
        print(json.dumps({{"impl": str(azure_settings.tracing_implementation()), "exporters": exporters}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "AzureMonitorTraceExporter" in report["exporters"]
    assert "OpenTelemetry" in report["impl"] or "opentelemetry" in report["impl"].lower()
