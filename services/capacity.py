"""Capacity rules from ARM's ListSkus answer: what a deployment may be scaled to, checked before the PATCH."""

from __future__ import annotations

from typing import Any

from .errors import ValidationError


def capacity_problem(capacity: int, rule: dict[str, Any]) -> str | None:
    """Why `capacity` breaks an ARM ListSkus capacity rule, or None when it is allowed."""
    allowed = [int(value) for value in rule.get("allowedValues") or []]
    if allowed:
        return None if capacity in allowed else f"allowed values are {', '.join(map(str, allowed))}"
    minimum = rule.get("minimum")
    maximum = rule.get("maximum")
    step = rule.get("step")
    if minimum is not None and capacity < int(minimum):
        return f"the minimum is {minimum}" + (f", in steps of {step}" if step and int(step) > 1 else "")
    if maximum is not None and capacity > int(maximum):
        return f"the maximum is {maximum}"
    if step and int(step) > 1 and (capacity - int(minimum or 0)) % int(step) != 0:
        start = int(minimum or 0)
        examples = ", ".join(str(start + n * int(step)) for n in range(3))
        return f"capacity goes in steps of {step} from {start} (e.g. {examples})"
    return None


def check_capacity(skus: Any, name: str, sku_name: str, capacity: int) -> None:
    """Refuse a SKU the deployment cannot use, or a capacity its rules do not allow (`skus`: ListSkus body)."""
    items = [item for item in (skus or {}).get("value", []) if isinstance(item, dict)]
    rules = {str(item.get("sku", {}).get("name", "")).lower(): item.get("capacity") or {} for item in items}
    rule = rules.get(sku_name.lower())
    if rule is None:
        available = ", ".join(sorted(str(item.get("sku", {}).get("name")) for item in items))
        raise ValidationError(
            f"SKU '{sku_name}' is not available for deployment '{name}'. Available: {available or 'none'}.",
            code="InvalidSku",
            target="sku.name",
        )
    problem = capacity_problem(capacity, rule)
    if problem:
        raise ValidationError(
            f"Capacity {capacity} is not allowed for SKU '{sku_name}' on deployment '{name}': {problem}.",
            code="InvalidCapacity",
            target="capacity",
        )
