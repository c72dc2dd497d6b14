"""Azure Monitor metrics from the calls the data plane served, the control that ages a deployment's use, and
fine-tuning jobs that finish after a configured delay."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from localdev.simulator.control_client import SimulatorControl

from .conftest import BASE_MODEL, CHAT_DEPLOYMENT, CHAT_MODEL, DATAPLANE_CONFIG, DP_ACCOUNT, RG, SUB, Arm, DataPlane

ACCOUNT_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.CognitiveServices/accounts/{DP_ACCOUNT}"
METRICS = f"{ACCOUNT_ID}/providers/Microsoft.Insights/metrics"
HELLO = {"messages": [{"role": "user", "content": "Hi"}]}


def query(days: int = 30, **extra: str) -> str:
    now = datetime.now(UTC).replace(microsecond=0)
    span = f"{(now - timedelta(days=days)).isoformat()}/{now.isoformat()}".replace("+00:00", "Z")
    params = {"metricnames": "AzureOpenAIRequests", "aggregation": "Total", "interval": "P1D", "timespan": span}
    params.update(extra)
    return METRICS + "?" + "&".join(f"{key}={requests.utils.quote(value)}" for key, value in params.items())


def metrics(arm: Arm, **extra: str) -> Any:
    answer = arm.call("GET", query(**extra), api_version="2023-10-01")
    assert answer.status_code == 200, answer.text
    return answer.json()


def totals(body: Any) -> dict[str | None, dict[str, float]]:
    found: dict[str | None, dict[str, float]] = {}
    for series in body["value"][0]["timeseries"]:
        meta = series["metadatavalues"]
        name = meta[0]["value"] if meta else None
        found[name] = {point["timeStamp"][:10]: point["total"] for point in series["data"] if point["total"]}
    return found


def test_requests_per_deployment_per_day_from_the_calls_served(dataplane: DataPlane, arm: Arm) -> None:
    for _ in range(3):
        assert dataplane.chat(HELLO).status_code == 200
    today = datetime.now(UTC).date().isoformat()
    split = metrics(arm, **{"$filter": "ModelDeploymentName eq '*'"})
    assert split["interval"] == "P1D" and split["value"][0]["name"]["value"] == "AzureOpenAIRequests"
    assert totals(split) == {CHAT_DEPLOYMENT: {today: 3.0}}
    assert len(split["value"][0]["timeseries"][0]["data"]) == 31  # one point per day of the timespan
    assert totals(metrics(arm)) == {None: {today: 3.0}}  # no split: the account's total


def test_shifting_a_deployments_use_moves_its_calls_into_the_past(
    dataplane: DataPlane, arm: Arm, control: SimulatorControl
) -> None:
    assert dataplane.chat(HELLO).status_code == 200
    assert control.shift_last_use(DP_ACCOUNT, CHAT_DEPLOYMENT, 5) == {"calls": 1, "deploymentFound": True}
    day = (datetime.now(UTC) - timedelta(days=5)).date().isoformat()
    assert totals(metrics(arm, **{"$filter": "ModelDeploymentName eq '*'"})) == {CHAT_DEPLOYMENT: {day: 1.0}}
    assert control.usage()[0]["calls"] == 1


def test_top_defaults_to_ten_series(dataplane: DataPlane, arm: Arm, control: SimulatorControl) -> None:
    config = copy.deepcopy(DATAPLANE_CONFIG)
    names = [f"d{index:02d}" for index in range(12)]
    config["accounts"][0]["deployments"] += [
        {"name": name, "model": {"format": "OpenAI", "name": CHAT_MODEL, "version": "2024-07-18"}} for name in names
    ]
    control.set_config(config)
    for name in names:
        assert dataplane.chat(HELLO, deployment=name).status_code == 200
    split = {"$filter": "ModelDeploymentName eq '*'"}
    assert len(totals(metrics(arm, **split))) == 10
    assert set(totals(metrics(arm, top="50", **split))) == set(names)


def test_the_request_is_checked_as_azure_monitor_does(dataplane: DataPlane, arm: Arm) -> None:
    assert arm.call("GET", query(), api_version=None).status_code == 400
    assert (
        arm.call("GET", query().replace("AzureOpenAIRequests", "Latency"), api_version="2023-10-01").status_code == 400
    )
    assert arm.call("GET", query(), api_version="2023-10-01", token="not-a-token").status_code == 401


def test_a_job_finishes_after_its_delay(dataplane: DataPlane, control: SimulatorControl) -> None:
    config = copy.deepcopy(DATAPLANE_CONFIG)
    config["accounts"][0]["fineTuningJobs"] += [
        {"id": "ftjob-soon-ok", "model": BASE_MODEL, "status": "running", "finishAfterSeconds": 0.3},
        {
            "id": "ftjob-soon-bad",
            "model": BASE_MODEL,
            "status": "running",
            "finishAfterSeconds": 0.3,
            "finishAs": "failed",
        },
    ]
    control.set_config(config)
    client = dataplane.client()
    assert client.fine_tuning.jobs.retrieve("ftjob-soon-ok").status == "running"
    time.sleep(0.35)
    done = client.fine_tuning.jobs.retrieve("ftjob-soon-ok")
    assert done.status == "succeeded" and done.fine_tuned_model == f"{BASE_MODEL}.ft-soon-ok"
    failed = client.fine_tuning.jobs.retrieve("ftjob-soon-bad")
    assert failed.status == "failed" and failed.error is not None and failed.error.code
