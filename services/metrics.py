"""Inference metrics through OpenTelemetry (to Application Insights when its connection string is set).

Two counters, `gateway.inference.requests` and `gateway.inference.tokens` (with `token.type` prompt or
completion), by deployment, model, status class (`2xx`, `4xx`, ...) and region. Never by caller: a dimension
per caller would run into Azure Monitor's limits on metric time series; per-caller figures come from the usage
ledger (GET /api/usage). Without a configured meter provider the counters cost next to nothing.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("metrics")

METER = "aoai-gateway"


class Metrics:
    def __init__(self, meter: Any = None) -> None:
        if meter is None:
            from opentelemetry import metrics

            meter = metrics.get_meter(METER)
        self._requests = meter.create_counter(
            "gateway.inference.requests", unit="{request}", description="Inference calls through the gateway"
        )
        self._tokens = meter.create_counter(
            "gateway.inference.tokens", unit="{token}", description="Tokens Azure OpenAI reported"
        )

    def record(self, call: Any) -> None:
        """A CallRecord sink: count the finished call (never raises)."""
        try:
            attributes = {
                "deployment": call.deployment,
                "model": call.model or "unknown",
                "status_class": f"{int(call.status) // 100}xx",
                "region": call.region or "unknown",
            }
            self._requests.add(1, attributes)
            for kind, count in (("prompt", call.prompt_tokens), ("completion", call.completion_tokens)):
                if isinstance(count, int) and count > 0:
                    self._tokens.add(count, {**attributes, "token.type": kind})
        except Exception:
            log.exception("recording inference metrics failed")
