"""Settings of queue-triggered deployments, the sweep, the idle report and deploy intents.

The queue names and the sweep's schedule are also binding expressions of the triggers (`%NAME%`), resolved by the
Functions host from the app settings: infra/ sets them, and the defaults here are what the local host uses when a
setting is absent.
"""

from __future__ import annotations

import re

from pydantic import field_validator
from pydantic_settings import BaseSettings

from .accounts import setting_error
from .setting_types import ApiVersion, TableName, Url, setting, tuning

DEFAULT_REQUESTS_QUEUE = "deployment-requests"
DEFAULT_RESULTS_QUEUE = "deployment-results"
DEFAULT_SWEEP_SCHEDULE = "0 */15 * * * *"
DEFAULT_METRICS_API_VERSION = "2023-10-01"
_QUEUE_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")


class QueueSettings(BaseSettings):
    """Queues, the sweep timer, keep-alive and the metrics API (mixed into `services.settings.Settings`)."""

    requests_queue: str = setting("DEPLOYMENT_REQUESTS_QUEUE", DEFAULT_REQUESTS_QUEUE, "service")
    results_queue: str = setting("DEPLOYMENT_RESULTS_QUEUE", DEFAULT_RESULTS_QUEUE, "service")
    sweep_schedule: str = setting("SWEEP_SCHEDULE", DEFAULT_SWEEP_SCHEDULE, "service")
    keepalive_after_days: int = tuning("KEEPALIVE_AFTER_DAYS", 12, 1, 14)
    # How long a request whose ARM operation is still running waits in the queue before it is checked again.
    queue_recheck_seconds: int = tuning("QUEUE_RECHECK_SECONDS", 15, 1, 600)
    metrics_api_version: ApiVersion = setting("METRICS_API_VERSION", DEFAULT_METRICS_API_VERSION, "service")
    work_table: TableName = setting("DEPLOYMENT_WORK_TABLE", "deploymentwork", "service")
    storage_queue_service_uri: Url | None = setting("AzureWebJobsStorage__queueServiceUri", None, "platform")

    @field_validator("requests_queue", "results_queue")
    @classmethod
    def _queue_name(cls, value: str) -> str:
        if not _QUEUE_NAME.fullmatch(value):
            raise setting_error("must be a queue name: 3-63 lower-case letters, digits and single hyphens")
        return value

    @field_validator("sweep_schedule")
    @classmethod
    def _ncrontab(cls, value: str) -> str:
        if len(value.split()) != 6:
            raise setting_error("must be an NCRONTAB expression of six fields, e.g. '0 */15 * * * *'")
        return value
