"""The idle report's arithmetic: the last day of use from Azure Monitor's answer, idle days, auto-deletion."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.idle import Usage, idle_row, is_fine_tuned, parse_last_use
from services.settings import Account

TODAY = date(2026, 11, 30)


def series(name: str, points: dict[str, float]) -> dict[str, Any]:
    return {
        "metadatavalues": [
            {"name": {"value": "modeldeploymentname", "localizedValue": "ModelDeploymentName"}, "value": name}
        ],
        "data": [{"timeStamp": f"{day}T00:00:00Z", "total": total} for day, total in points.items()],
    }


def test_the_last_day_with_a_call_per_deployment() -> None:
    body = {
        "value": [
            {
                "name": {"value": "AzureOpenAIRequests"},
                "timeseries": [
                    series("Support-Bot", {"2026-11-20": 3, "2026-11-25": 1, "2026-11-29": 0}),
                    series("quiet", {"2026-11-01": 0}),
                ],
            }
        ]
    }
    assert parse_last_use(body) == {"support-bot": date(2026, 11, 25)}
    assert parse_last_use({}) == {} and parse_last_use({"value": "x"}) == {}


def account() -> Account:
    return Account.model_validate(
        {
            "subscriptionId": "00000000-0000-0000-0000-000000000000",
            "resourceGroup": "rg",
            "accountName": "aoai-test",
            "endpoint": "https://aoai-test.openai.azure.com/",
        }
    )


def resource(model: str, created: str | None = None, **tags: str) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "d1", "properties": {"model": {"name": model}}, "tags": tags}
    if created:
        body["systemData"] = {"createdAt": created}
    return body


def test_idle_days_auto_deletion_and_the_lifecycle_tags() -> None:
    alias = account()
    alias._alias = "main"  # type: ignore[attr-defined]
    row = idle_row(Usage(resource("m.ft-1", keepAlive="true"), date(2026, 11, 20)), alias, TODAY)
    assert row["idleDays"] == 10 and row["autoDeleteInDays"] == 5 and row["lastUsed"] == "2026-11-20"
    assert row["keepAlive"] is True and row["expiresAt"] is None
    assert idle_row(Usage(resource("m.ft-1"), date(2026, 11, 1)), alias, TODAY)["autoDeleteInDays"] == 0
    assert idle_row(Usage(resource("gpt-4o"), date(2026, 11, 20)), alias, TODAY)["autoDeleteInDays"] is None


def test_never_called_counts_from_creation_or_the_whole_window() -> None:
    assert Usage(resource("m", "2026-11-27T09:00:00Z"), None).idle_days(TODAY) == 3
    assert Usage(resource("m"), None).idle_days(TODAY) == 30


def test_fine_tuned_models_and_checkpoints() -> None:
    assert is_fine_tuned("gpt-4o-mini-2024-07-18.ft-0123") and is_fine_tuned("ftchkpt-abc")
    assert is_fine_tuned("gpt-4o-mini.ft-1:ckpt-step-10") and not is_fine_tuned("gpt-4o")
