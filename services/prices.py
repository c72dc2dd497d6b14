"""Estimated hosting cost of a deployment, from a table of list prices (`prices.json`, or `PRICE_TABLE`).

A fine-tuned model deployed on a Standard-type SKU pays an hourly hosting fee whether it is called or not; on
DeveloperTier it pays none; any model on a Provisioned SKU pays per PTU per hour. Tokens are billed on top and
are not estimated here. The figures are list prices with their source and date: an estimate, never a bill.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

HOURS_PER_30_DAYS = 24 * 30
DEFAULT_TABLE_PATH = Path(__file__).with_name("prices.json")
ANY_FAMILY = "*"
_DATE_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")

Price = float


class PriceTable(BaseModel):
    """Hourly list prices: hosting of fine-tuned models per family and SKU, provisioned SKUs per unit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = Field(min_length=3, max_length=3)
    source: str = Field(min_length=1)
    checked: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    note: str = ""
    hosting: dict[str, dict[str, Price]]
    provisionedPerUnitHour: dict[str, Price] = Field(default_factory=dict)
    # Foundry serverless endpoints of fine-tuned (workspace) models: model-name prefix (lower case) -> hourly fee.
    serverlessHosting: dict[str, Price] = Field(default_factory=dict)

    def about(self) -> dict[str, str]:
        """What the page says of the figures: where they come from, when they were read."""
        return {"currency": self.currency, "source": self.source, "checked": self.checked, "note": self.note}


def parse_table(text: str) -> PriceTable:
    """A price table from JSON text; ValueError saying what is wrong."""
    try:
        return PriceTable.model_validate(json.loads(text))
    except json.JSONDecodeError as error:
        raise ValueError(f"is not valid JSON ({error.msg} at {error.pos})") from None
    except PydanticValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the table"
        raise ValueError(f"is not a price table: {where}: {first['msg']}") from None


def load_table(value: str) -> PriceTable:
    """`PRICE_TABLE`: the table as JSON text (starting with `{`), or the path of a JSON file holding it."""
    if value.lstrip().startswith("{"):
        return parse_table(value)
    path = Path(value)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"names a file that cannot be read ({error.strerror or error})") from None
    return parse_table(text)


@lru_cache(maxsize=1)
def default_table() -> PriceTable:
    return parse_table(DEFAULT_TABLE_PATH.read_text(encoding="utf-8"))


def is_fine_tuned(model: str) -> bool:
    return ".ft-" in model or model.startswith(("ftchkpt-", "ft:"))


def family_of(model: str, table: PriceTable) -> str | None:
    """The table's family for a model id: `gpt-4o-mini-2024-07-18.ft-abc` -> `gpt-4o-mini`; a fine-tuned model of
    a family the table does not list (or a checkpoint id) -> `*` when the table has it; else None."""
    base = model.split(":")[1] if model.startswith("ft:") and model.count(":") >= 2 else model
    base = _DATE_SUFFIX.sub("", base.split(".ft-")[0])
    if base in table.hosting:
        return base
    candidates = [family for family in table.hosting if family != ANY_FAMILY and base.startswith(family + "-")]
    if candidates:
        return max(candidates, key=len)
    return ANY_FAMILY if ANY_FAMILY in table.hosting else None


def estimate_serverless(model_id: str, table: PriceTable) -> dict[str, Any]:
    """A Foundry serverless endpoint: a catalog model (`azureml://registries/...`) is billed per token only; a
    fine-tuned model of the project (`azureml://locations/.../workspaces/.../models/<name>/...`) pays an hourly
    hosting fee, priced by the longest `serverlessHosting` prefix of its name (`unknown` when none matches)."""
    family = None
    per_hour: float | None
    if "/workspaces/" not in model_id:
        basis, per_hour = "tokens", 0.0
    else:
        name = model_id.split("/models/", 1)[-1].split("/", 1)[0].lower()
        matches = [prefix for prefix in table.serverlessHosting if name.startswith(prefix.lower())]
        family = max(matches, key=len) if matches else None
        basis, per_hour = ("hosting", table.serverlessHosting[family]) if family else ("unknown", None)
    return _cost(per_hour, basis, family, table)


def _cost(per_hour: float | None, basis: str, family: str | None, table: PriceTable) -> dict[str, Any]:
    return {
        "perHour": None if per_hour is None else round(per_hour, 4),
        "per30Days": None if per_hour is None else round(per_hour * HOURS_PER_30_DAYS, 2),
        "currency": table.currency,
        "basis": basis,
        "family": family,
    }


def estimate(model: str, sku: str, capacity: int | None, table: PriceTable) -> dict[str, Any]:
    """The estimated hosting cost of one deployment: per hour and per 30 days, and what it is based on
    (`hosting`: a fine-tuned model's hourly fee; `provisioned`: per PTU; `tokens`: no hourly cost, tokens only;
    `unknown`: the table has no price for it, so it counts as nothing in the totals)."""
    per_hour: float | None
    provisioned = {name.lower(): price for name, price in table.provisionedPerUnitHour.items()}
    family = None
    if sku.lower() in provisioned:
        basis, per_hour = "provisioned", provisioned[sku.lower()] * max(capacity or 0, 0)
    elif not is_fine_tuned(model):
        basis, per_hour = "tokens", 0.0
    else:
        family = family_of(model, table)
        prices = {name.lower(): price for name, price in table.hosting.get(family or "", {}).items()}
        price = prices.get(sku.lower())
        basis, per_hour = ("hosting", price) if price is not None else ("unknown", None)
    return _cost(per_hour, basis, family, table)
