"""Cost estimates from the price table, and the PRICE_TABLE setting that replaces the shipped one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.errors import ConfigurationError
from services.prices import default_table, estimate, estimate_serverless, family_of
from services.settings import load_settings

pytestmark = pytest.mark.unit

ACCOUNTS = json.dumps(
    {"main": {"subscriptionId": "11111111-1111-1111-1111-111111111111", "resourceGroup": "rg", "accountName": "aoai"}}
)
TABLE = {
    "currency": "EUR",
    "source": "https://example.com/prices",
    "checked": "2026-11-30",
    "hosting": {"gpt-4o": {"Standard": 2.0}, "gpt-4o-mini": {"Standard": 1.0, "DeveloperTier": 0}},
    "provisionedPerUnitHour": {"GlobalProvisionedManaged": 1.5},
}


def test_shipped_table_names_its_source_and_date() -> None:
    table = default_table()
    assert table.source.startswith("https://") and table.checked
    assert table.hosting["gpt-4o-mini"]["DeveloperTier"] == 0


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o-mini-2024-07-18.ft-7c1d2a3b4e5f", "gpt-4o-mini"),  # the longer family wins over gpt-4o
        ("gpt-4o-2024-08-06.ft-3e4f5a6b7c8d", "gpt-4o"),
        ("gpt-4.1-nano-2025-04-14.ft-1", "gpt-4.1-nano"),
        ("ftchkpt-e559c011ecc04fc68eaa339d8227d02d", "*"),  # a checkpoint names no family
    ],
)
def test_family_of_fine_tuned_ids(model: str, family: str) -> None:
    assert family_of(model, default_table()) == family


def test_estimates_per_hour_and_per_30_days() -> None:
    settings = load_settings({"AZURE_OPENAI_ACCOUNTS": ACCOUNTS, "PRICE_TABLE": json.dumps(TABLE)})
    table = settings.price_table
    fine_tuned = estimate("gpt-4o-mini-2024-07-18.ft-1", "standard", 3, table)
    assert fine_tuned == {
        "perHour": 1.0,
        "per30Days": 720.0,
        "currency": "EUR",
        "basis": "hosting",
        "family": "gpt-4o-mini",
    }
    assert estimate("gpt-4o-mini-2024-07-18.ft-1", "DeveloperTier", 1, table)["perHour"] == 0
    assert estimate("gpt-4o", "GlobalProvisionedManaged", 20, table)["perHour"] == 30.0  # per unit
    assert estimate("gpt-4o", "GlobalStandard", 10, table)["basis"] == "tokens"  # a base model: no hosting fee
    unknown = estimate("gpt-4o-2024-08-06.ft-1", "GlobalStandard", 1, table)
    assert (unknown["perHour"], unknown["basis"]) == (None, "unknown")


def test_price_table_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(TABLE), encoding="utf-8")
    settings = load_settings({"AZURE_OPENAI_ACCOUNTS": ACCOUNTS, "PRICE_TABLE": str(path)})
    assert settings.price_table.currency == "EUR"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("{nope", "not valid JSON"),
        (json.dumps({**TABLE, "checked": "yesterday"}), "checked"),
        ("/no/such/prices.json", "cannot be read"),
    ],
)
def test_bad_price_table_names_the_setting(value: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_settings({"AZURE_OPENAI_ACCOUNTS": ACCOUNTS, "PRICE_TABLE": value})
    assert raised.value.target == "PRICE_TABLE"
    assert raised.value.message.startswith("PRICE_TABLE ") and fragment in raised.value.message


def test_serverless_endpoints_pay_hosting_only_for_fine_tuned_models() -> None:
    table = default_table().model_copy(update={"serverlessHosting": {"phi-4-mini": 0.8, "phi-4": 1.2}})
    workspace = "azureml://locations/eastus2/workspaces/7d1f0c5e-2b3a-4c4d-9e8f-a1b2c3d4e5f6/models"
    fine_tuned = estimate_serverless(f"{workspace}/phi-4-mini-support-ft/versions/2", table)
    assert (fine_tuned["basis"], fine_tuned["family"], fine_tuned["perHour"]) == ("hosting", "phi-4-mini", 0.8)
    assert fine_tuned["per30Days"] == 576.0
    catalog = estimate_serverless("azureml://registries/Meta/models/Meta-Llama-3.1-8B-Instruct", table)
    assert (catalog["basis"], catalog["perHour"]) == ("tokens", 0.0)
    unpriced = estimate_serverless(f"{workspace}/llama-ft/versions/1", default_table())
    assert (unpriced["basis"], unpriced["perHour"]) == ("unknown", None)
