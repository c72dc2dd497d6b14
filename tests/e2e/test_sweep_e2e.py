"""The sweep (timer trigger, run through the Functions admin endpoint), the idle report and deploy intents, against
the simulator's Azure Monitor metrics, its fine-tuning jobs that finish after a delay, and Azurite.

The app is served in this process (one context of its own); the sweep runs when a test posts to
`/admin/functions/sweep`, as `func start` offers, and each run is awaited through its summary log line.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from localdev.simulator.control_client import SimulatorControl
from tests.e2e.conftest import BASE_CONFIG, Api, Stack
from tests.e2e.queues import Queues

FT = "gpt-4o-mini-2024-07-18.ft-7c1d2a3b4e5f"
MAIN = "aoai-swedencentral"
RESULTS = "sweep-results"
CHAT = {"messages": [{"role": "user", "content": "Hello"}]}


@pytest.fixture(scope="module")
def app(stack: Stack) -> Api:
    return stack.configured(DEPLOYMENT_REQUESTS_QUEUE="sweep-requests", DEPLOYMENT_RESULTS_QUEUE=RESULTS)


class Sweeper:
    """Runs the sweep through the admin endpoint and waits for its summary."""

    def __init__(self, api: Api, caplog: pytest.LogCaptureFixture) -> None:
        self.api, self.caplog = api, caplog
        caplog.set_level(logging.INFO, logger="sweep")

    def run(self, timeout: float = 20) -> str:
        before = self._summaries()
        answer = self.api.session.post(f"{self.api.base_url}/admin/functions/sweep", json={"input": ""}, timeout=10)
        assert answer.status_code == 202
        deadline = time.monotonic() + timeout
        while len(self._summaries()) == len(before):
            assert time.monotonic() < deadline, "the sweep did not finish"
            time.sleep(0.05)
        return self._summaries()[-1]

    def _summaries(self) -> list[str]:
        return [record.getMessage() for record in self.caplog.records if record.name == "sweep"]


@pytest.fixture
def sweeper(app: Api, sim: SimulatorControl, caplog: pytest.LogCaptureFixture) -> Sweeper:
    return Sweeper(app, caplog)


@pytest.fixture
def results(stack: Stack) -> Iterator[Queues]:
    queues = Queues(stack.azurite.connection_string, "sweep-requests", RESULTS)
    queues.drain()
    yield queues
    queues.close()


def put(api: Api, name: str, **body: Any) -> dict[str, Any]:
    answer = api.put(name, {"model": FT, "sku": {"name": "Standard", "capacity": 1}, **body}, wait="20")
    assert answer.status_code in (200, 201), answer.text
    return dict(answer.json())


def chat(api: Api, name: str) -> None:
    answer = api.call(
        "POST", f"/openai/deployments/{name}/chat/completions", params={"api-version": "2024-10-21"}, json=CHAT
    )
    assert answer.status_code == 200, answer.text


def chat_calls(sim: SimulatorControl, name: str) -> list[dict[str, Any]]:
    return [
        entry for entry in sim.requests("dataplane") if entry["path"].endswith(f"/deployments/{name}/chat/completions")
    ]


def gone(api: Api, name: str, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if api.get(name).status_code == 404:
            return True
        time.sleep(0.1)
    return False


def test_a_deployment_past_its_expiry_is_deleted_by_the_sweep(app: Api, sweeper: Sweeper) -> None:
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    short = put(app, "ttl-bot", expiresAt=soon.isoformat().replace("+00:00", "Z"))
    assert short["expiresAt"] == soon.isoformat().replace("+00:00", "Z")
    later = put(app, "ttl-later", ttlHours=24)
    assert datetime.fromisoformat(later["expiresAt"].replace("Z", "+00:00")) > soon + timedelta(hours=23)
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.1)
    summary = sweeper.run()
    assert '"name": "ttl-bot"' in summary
    assert gone(app, "ttl-bot")
    assert app.get("ttl-later").status_code == 200
    trail = app.call("GET", "/audit", params={"deployment": "ttl-bot"}).json()["value"]
    expiry = [record for record in trail if record["action"] == "expire"]
    assert len(expiry) == 1 and expiry[0]["caller"]["name"] == "timer:sweep"
    assert expiry[0]["request"]["expiresAt"] == short["expiresAt"]


def test_keepalive_calls_an_idle_kept_deployment_once_and_leaves_busy_ones(
    app: Api, sim: SimulatorControl, sweeper: Sweeper
) -> None:
    for name, keep in (("ka-idle", True), ("ka-busy", True), ("ka-not-kept", False)):
        assert put(app, name, keepAlive=keep)["keepAlive"] is keep
        chat(app, name)
    sim.shift_last_use(MAIN, "ka-idle", 13)
    sim.shift_last_use(MAIN, "ka-not-kept", 13)
    sim.clear_requests()
    sweeper.run()
    sweeper.run()  # a second run (or a second instance) the same day makes no second call
    calls = chat_calls(sim, "ka-idle")
    assert len(calls) == 1
    assert calls[0]["body"]["max_tokens"] == 1 and len(calls[0]["body"]["messages"]) == 1
    assert chat_calls(sim, "ka-busy") == [] and chat_calls(sim, "ka-not-kept") == []
    trail = app.call("GET", "/audit", params={"deployment": "ka-idle"}).json()["value"]
    kept = [record for record in trail if record["action"] == "keepalive"]
    assert len(kept) == 1 and kept[0]["caller"]["name"] == "timer:sweep" and kept[0]["request"]["idleDays"] == 13


def test_idle_report_matches_the_usage_with_one_metrics_call_per_account(app: Api, sim: SimulatorControl) -> None:
    config = copy.deepcopy(BASE_CONFIG)
    names = [f"idle-{index:02d}" for index in range(12)]
    config["accounts"][0]["deployments"] += [
        {"name": name, "model": {"format": "OpenAI", "name": FT, "version": "1"}} for name in names
    ]
    east_model = {"format": "OpenAI", "name": "gpt-4o-2024-08-06.ft-3e4f5a6b7c8d", "version": "1"}
    config["accounts"][1]["deployments"] = [{"name": "east-chat", "model": east_model}]
    sim.set_config(config)
    for name in names:
        chat(app, name)
    for index, name in enumerate(names):
        sim.shift_last_use(MAIN, name, 8 + index)
    sim.clear_requests()
    rows = app.call("GET", "/deployments/idle", params={"account": "main", "days": "7"}).json()["value"]
    today = datetime.now(UTC).date()
    by_name = {row["name"]: row for row in rows}
    assert sorted(by_name) == names  # more than 10: the metrics call raised `top`; "vision" is in use (new)
    for index, name in enumerate(names):
        idle = 8 + index
        assert by_name[name] == {
            "name": name,
            "account": "main",
            "model": FT,
            "lastUsed": (today - timedelta(days=idle)).isoformat(),
            "idleDays": idle,
            "autoDeleteInDays": max(0, 15 - idle),
            "expiresAt": None,
            "keepAlive": False,
        }
    metrics = [
        entry for entry in sim.requests("arm") if entry["path"].endswith("/providers/Microsoft.Insights/metrics")
    ]
    assert len(metrics) == 1 and int(metrics[0]["query"]["top"]) > 10
    assert metrics[0]["query"]["metricnames"] == "AzureOpenAIRequests"
    assert metrics[0]["query"]["$filter"] == "ModelDeploymentName eq '*'"
    sim.clear_requests()
    everywhere = app.call("GET", "/deployments/idle", params={"days": "17"}).json()["value"]
    assert {row["name"] for row in everywhere} == {"idle-09", "idle-10", "idle-11"}
    calls = [entry["path"] for entry in sim.requests("arm") if entry["path"].endswith("/Microsoft.Insights/metrics")]
    assert len(calls) == 2 and len(set(calls)) == 2  # one per configured account


def with_jobs(*jobs: dict[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(BASE_CONFIG)
    config["accounts"][0]["fineTuningJobs"] += list(jobs)
    return config


def test_a_deploy_intent_deploys_when_the_job_succeeds_and_fails_with_the_job(
    app: Api, sim: SimulatorControl, sweeper: Sweeper, results: Queues
) -> None:
    sim.set_config(
        with_jobs(
            {"id": "ftjob-late-ok", "model": "gpt-4o-mini-2024-07-18", "status": "running", "finishAfterSeconds": 1},
            {
                "id": "ftjob-late-bad",
                "model": "gpt-4o-mini-2024-07-18",
                "status": "running",
                "finishAfterSeconds": 1,
                "finishAs": "failed",
                "error": {"code": "invalidTrainingFile", "message": "The training file has no examples."},
            },
        )
    )
    started = time.monotonic()
    for job, name in (("ftjob-late-ok", "late-bot"), ("ftjob-late-bad", "late-bad-bot")):
        answer = app.call("POST", f"/fine_tuning/jobs/{job}/deploy", json={"deployment": name})
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "Pending" and answer.json()["deployment"] == name
        assert answer.headers["Location"].startswith(f"/api/fine_tuning/jobs/{job}/deploy")
    sweeper.run()  # the jobs are still running: nothing happens
    assert intent(app, "ftjob-late-ok")["status"] == "Pending"
    time.sleep(max(0.0, 1.05 - (time.monotonic() - started)))
    for _ in range(10):
        sweeper.run()
        if intent(app, "ftjob-late-ok")["status"] == "Succeeded":
            break
        time.sleep(0.3)
    done = intent(app, "ftjob-late-ok")
    assert done["status"] == "Succeeded" and done["error"] is None
    assert done["result"]["model"]["name"] == "gpt-4o-mini-2024-07-18.ft-late-ok"
    assert app.get("late-bot").json()["provisioningState"] == "Succeeded"
    failed = intent(app, "ftjob-late-bad")
    assert failed["status"] == "Failed" and failed["error"]["code"] == "invalidTrainingFile"
    assert app.get("late-bad-bot").status_code == 404
    ok = results.result_for("intent:ftjob-late-ok")
    assert ok["status"] == "Succeeded" and ok["action"] == "deploy" and ok["name"] == "late-bot"
    bad = results.result_for("intent:ftjob-late-bad")
    assert bad["status"] == "Failed" and bad["error"]["code"] == "invalidTrainingFile"


def intent(api: Api, job: str) -> dict[str, Any]:
    answer = api.call("GET", f"/fine_tuning/jobs/{job}/deploy")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_a_serverless_endpoint_past_its_expiry_is_deleted_by_the_sweep(app: Api, sweeper: Sweeper) -> None:
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    expires = soon.isoformat().replace("+00:00", "Z")
    model = "azureml://registries/azureml/models/Phi-4-mini-instruct/versions/1"
    path, project = "/serverless-endpoints/ttl-phi", {"project": "foundry"}
    created = app.call("PUT", path, params={**project, "wait": "20"}, json={"model": model, "expiresAt": expires})
    assert created.status_code == 201, created.text
    assert created.json()["tags"]["expiresAt"] == expires
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.1)
    summary = sweeper.run()
    assert '"project": "foundry", "name": "ttl-phi"' in summary
    deadline = time.monotonic() + 10
    while app.call("GET", path, params=project).status_code != 404:
        assert time.monotonic() < deadline, "the expired endpoint was not deleted"
        time.sleep(0.1)
    trail = app.call("GET", "/audit", params={"deployment": "ttl-phi"}).json()["value"]
    expiry = [record for record in trail if record["action"] == "expire"]
    assert len(expiry) == 1 and expiry[0]["project"] == "foundry" and expiry[0]["caller"]["name"] == "timer:sweep"
