"""GET /api/overview over real HTTP: every account's deployments in one answer, an account that fails reported
beside the others, estimated cost and totals, and who is asking."""

from __future__ import annotations

import pytest

from localdev.simulator.control_client import SimulatorControl
from localdev.wiring import DEMO_ACCOUNTS
from services.auth import encode_principal
from tests.e2e.conftest import Api, Stack

MAIN, EAST = DEMO_ACCOUNTS


@pytest.fixture(scope="module")
def overview_api(stack: Stack) -> Api:
    return stack.configured()  # AUTH_MODE=none: the local developer has every role


def test_every_account_in_one_answer_with_cost_and_totals(overview_api: Api, sim: SimulatorControl) -> None:
    sim.shift_last_use(EAST.account_name, "east-chat", 9)  # no call for 9 days (the simulator's metrics)
    answer = overview_api.call("GET", "/overview")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    rows = {(row["account"], row["name"]): row for row in body["value"]}
    seeded = {(account.alias, d["name"]) for account in DEMO_ACCOUNTS for d in account.deployments}
    assert set(rows) == seeded
    assert body["errors"] == []
    chat = rows[("east", "east-chat")]
    assert (chat["kind"], chat["sku"], chat["capacity"], chat["state"]) == ("deployment", "Standard", 2, "Succeeded")
    assert chat["keepAlive"] is True and chat["expiresAt"] is None  # read from the deployment's tags
    assert rows[("east", "east-reports")]["expiresAt"] == "2027-06-30T00:00:00Z"
    assert chat["cost"]["perHour"] == 1.7 and chat["cost"]["per30Days"] == 1224.0
    assert rows[("east", "east-trial")]["cost"]["perHour"] == 0  # DeveloperTier: no hosting fee
    assert rows[("main", "vision")]["cost"]["basis"] == "tokens"  # a base model pays per token only
    # Idle figures from Azure Monitor's metrics: days since the last call (since creation when never called), and
    # Azure's 15-day removal of idle fine-tuned deployments; a base model is never removed for idling.
    assert (chat["idleDays"], chat["autoDeleteInDays"], chat["idleAndCosting"]) == (9, 6, True)
    assert rows[("east", "east-reports")]["idleAndCosting"] is False  # created today: not idle yet
    assert rows[("main", "vision")]["autoDeleteInDays"] is None and rows[("main", "vision")]["idleDays"] == 0
    groups = {group["name"]: group for group in body["totals"]["groups"]}
    assert (groups["east"]["count"], groups["east"]["perHour"]) == (3, 3.4)
    assert (groups["main"]["count"], groups["main"]["perHour"]) == (1, 0)
    assert body["totals"]["overall"] == {"count": 4, "perHour": 3.4, "per30Days": 2448.0, "unpriced": 0}
    assert body["caller"]["roles"] == ["Audit.Read", "Deployments.Read", "Deployments.Write", "Inference.Invoke"]
    assert body["prices"]["source"].startswith("https://") and body["prices"]["checked"]


def test_a_failing_account_is_reported_while_the_others_show(overview_api: Api, sim: SimulatorControl) -> None:
    sim.add_fault(
        scope="arm", method="GET", pathContains=EAST.account_name, status=403, code="AuthorizationFailed", count=-1
    )
    answer = overview_api.call("GET", "/overview")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert {row["account"] for row in body["value"]} == {"main"}
    error, idle_error = sorted(body["errors"], key=lambda entry: "source" in entry)
    assert error["account"] == "east" and error["error"]["code"] == "AuthorizationFailed"
    assert (idle_error["account"], idle_error["source"]) == ("east", "idleReport")  # its idle figures, likewise
    assert "Cognitive Services OpenAI Contributor" in error["error"]["message"]  # the service's fix hint
    assert {group["name"] for group in body["totals"]["groups"]} == {"main", "east", "foundry"}  # foundry: a project


def test_the_caller_and_their_roles_come_back(stack: Stack, sim: SimulatorControl) -> None:
    api = stack.configured(AUTH_MODE="entra", WEBSITE_AUTH_ENABLED="True")
    reader = encode_principal(object_id="5b0c2c43-0000-4000-8000-000000000042", roles=["Deployments.Write"], name="ops")
    answer = api.call("GET", "/overview", headers={"X-MS-CLIENT-PRINCIPAL": reader})
    assert answer.status_code == 200, answer.text
    assert answer.json()["caller"] == {"name": "ops", "roles": ["Deployments.Read", "Deployments.Write"]}
    nobody = encode_principal(object_id="5b0c2c43-0000-4000-8000-000000000043", roles=[], name="guest")
    refused = api.call("GET", "/overview", headers={"X-MS-CLIENT-PRINCIPAL": nobody})
    assert refused.status_code == 403 and "Deployments.Read" in refused.json()["error"]["message"]


def test_the_page_is_served_with_a_strict_content_security_policy(overview_api: Api, sim: SimulatorControl) -> None:
    page = overview_api.call("GET", "/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in page.text and "style=" not in page.text  # nothing inline
    script = overview_api.call("GET", "/dashboard/dashboard.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "innerHTML" not in script.text
    for name in ("prices.json", "..%2Fprices.py", "index.html%00.js"):
        missing = overview_api.call("GET", f"/dashboard/{name}")
        assert missing.status_code == 404, name  # only the page's own files are served
    assert overview_api.call("GET", "/dashboard/prices.json").json()["error"]["code"] == "FileNotFound"
    assert sim.requests() == []
