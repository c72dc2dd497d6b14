"""The overview's assembly: every source at once, failures beside the rest, idle figures, serverless rows, totals."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.auth import Caller, Role
from services.errors import UpstreamUnavailable
from services.overview import Source, Sources, build
from services.prices import default_table

pytestmark = pytest.mark.unit

READER = Caller(name="ops", roles=frozenset({Role.DEPLOYMENTS_WRITE}))
FINE_TUNED = "gpt-4o-mini-2024-07-18.ft-7c1d2a3b4e5f"


def deployment(name: str, *, sku: str = "Standard", tags: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "model": {"format": "OpenAI", "name": FINE_TUNED, "version": "1"},
        "sku": {"name": sku, "capacity": 1},
        "provisioningState": "Succeeded",
        "tags": tags or {},
    }


def listing(rows: dict[str, list[dict[str, Any]]]) -> Any:
    async def fetch(alias: str) -> list[dict[str, Any]]:
        return rows[alias]

    return fetch


def run(sources: Sources) -> dict[str, Any]:
    return asyncio.run(build(sources, default_table(), READER))


def test_accounts_are_listed_at_the_same_time() -> None:
    """Each account's list waits until every other one has started: only a concurrent fan-out finishes."""
    aliases = ["a", "b", "c"]

    async def scenario() -> dict[str, Any]:
        started: set[str] = set()
        everyone = asyncio.Event()

        async def fetch(alias: str) -> list[dict[str, Any]]:
            started.add(alias)
            if started == set(aliases):
                everyone.set()
            await asyncio.wait_for(everyone.wait(), timeout=5)
            return [deployment(f"{alias}-1")]

        return await build(Sources([Source("deployment", "account", aliases, fetch)]), default_table(), READER)

    answer = asyncio.run(scenario())
    assert [row["account"] for row in answer["value"]] == aliases
    assert answer["errors"] == []


def test_a_failing_account_is_an_error_entry_and_the_others_stay() -> None:
    async def fetch(alias: str) -> list[dict[str, Any]]:
        if alias == "down":
            raise UpstreamUnavailable("ARM could not be reached for account 'down'.")
        return [deployment("ok")]

    answer = run(Sources([Source("deployment", "account", ["up", "down"], fetch)]))
    assert [row["name"] for row in answer["value"]] == ["ok"]
    assert answer["errors"] == [
        {
            "account": "down",
            "error": {"code": "UpstreamUnavailable", "message": "ARM could not be reached for account 'down'."},
        }
    ]
    assert [(g["name"], g["count"]) for g in answer["totals"]["groups"]] == [("up", 1), ("down", 0)]


def test_expiry_and_keep_alive_come_from_tags_and_idle_figures_from_the_idle_report() -> None:
    rows = {
        "main": [
            deployment("kept", tags={"keepAlive": "true", "expiresAt": "2027-01-01T00:00:00Z"}),
            deployment("idle"),
        ]
    }

    async def idle_report() -> list[dict[str, Any]]:
        return [
            {
                "account": "main",
                "name": "IDLE",
                "lastUsed": "2026-11-20T10:00:00Z",
                "idleDays": 10,
                "autoDeleteInDays": 5,
            }
        ]

    answer = run(Sources([Source("deployment", "account", ["main"], listing(rows))], idle=[("main", idle_report)]))
    idle, kept = answer["value"]  # sorted by name
    assert (kept["keepAlive"], kept["expiresAt"], kept["idleDays"]) == (True, "2027-01-01T00:00:00Z", None)
    assert (idle["idleDays"], idle["autoDeleteInDays"], idle["lastUsed"]) == (10, 5, "2026-11-20T10:00:00Z")
    assert idle["idleAndCosting"] is True and kept["idleAndCosting"] is False


def test_an_idle_deployment_that_costs_nothing_is_not_marked() -> None:
    rows = {"main": [deployment("trial", sku="DeveloperTier")]}

    async def idle_report() -> list[dict[str, Any]]:
        return [{"account": "main", "name": "trial", "idleDays": 3}]

    answer = run(Sources([Source("deployment", "account", ["main"], listing(rows))], idle=[("main", idle_report)]))
    assert answer["value"][0]["idleAndCosting"] is False


def test_serverless_endpoints_plug_in_as_another_source() -> None:
    endpoint = {
        "name": "phi-chat",
        "project": "p",
        "model": "azureml://registries/azureml/models/Phi-4",
        "provisioningState": "Succeeded",
        "endpointState": "Online",
        "tags": {},
    }
    sources = Sources(
        [
            Source("deployment", "account", ["main"], listing({"main": [deployment("ft")]})),
            Source("serverlessEndpoint", "project", ["research"], listing({"research": [endpoint]})),
        ]
    )
    answer = run(sources)
    served = next(row for row in answer["value"] if row["kind"] == "serverlessEndpoint")
    assert (served["project"], served["endpointState"], served["cost"]["basis"]) == ("research", "Online", "tokens")
    groups = {(g["scope"], g["name"]): g for g in answer["totals"]["groups"]}
    assert groups[("project", "research")]["count"] == 1 and groups[("account", "main")]["perHour"] == 1.7
    assert answer["totals"]["overall"] == {"count": 2, "perHour": 1.7, "per30Days": 1224.0, "unpriced": 0}


def test_pending_deploy_intents_and_the_caller() -> None:
    async def intents() -> list[dict[str, Any]]:
        return [{"jobId": "ftjob-1", "status": "waiting", "deployment": "next-bot"}]

    answer = run(Sources([], intents=[intents]))
    assert answer["pendingDeployments"] == [{"jobId": "ftjob-1", "status": "waiting", "deployment": "next-bot"}]
    assert answer["caller"] == {"name": "ops", "roles": ["Deployments.Read", "Deployments.Write"]}
