"""Settings of the platform team's page and its overview: the price table the cost estimates use."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator
from pydantic_settings import BaseSettings

from .accounts import setting_error
from .prices import PriceTable, default_table, load_table
from .setting_types import setting


class DashboardSettings(BaseSettings):
    # The list prices behind the cost estimates: JSON text, or the path of a JSON file, shaped as
    # services/prices.json (the shipped table, used when this is unset).
    price_table_override: PriceTable | None = setting(
        "PRICE_TABLE", None, "tuning", description="a price table as JSON text or the path of a JSON file"
    )

    @field_validator("price_table_override", mode="before")
    @classmethod
    def _read_price_table(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return load_table(value)
        except ValueError as error:
            raise setting_error(
                "must be a price table shaped as services/prices.json (JSON text or a file path); it {reason}",
                reason=str(error),
            ) from None

    @property
    def price_table(self) -> PriceTable:
        return self.price_table_override or default_table()
