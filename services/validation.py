"""Request bodies checked against pydantic models, with the first problem told in the service's error shape."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic import ValidationError as PydanticValidationError

from .errors import ValidationError

_Model = TypeVar("_Model", bound=BaseModel)


class StrictModel(BaseModel):
    """A request body: unknown fields refused, no type coercion ("1" is not 1), immutable once parsed."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def parse_model(model: type[_Model], data: dict[str, Any], *, hints: dict[str, str] | None = None) -> _Model:
    """`data` as `model`, or a 400 naming the first field at fault. `hints` replaces pydantic's wording of a
    pattern mismatch for a field with a sentence a caller understands."""
    try:
        return model.model_validate(data)
    except PydanticValidationError as error:
        raise _first_problem(error, model, hints or {}) from None


def _first_problem(error: PydanticValidationError, model: type[BaseModel], hints: dict[str, str]) -> ValidationError:
    first = error.errors(include_url=False)[0]
    location = ".".join(str(part) for part in first["loc"])
    kind = first["type"]
    if kind == "extra_forbidden":
        allowed = ", ".join(model.model_fields)
        message = f"Unknown field '{location}'. Allowed fields: {allowed}."
        return ValidationError(message, code="UnknownField", target=location)
    if kind == "missing":
        return ValidationError(f"'{location}' is required.", code="MissingField", target=location)
    detail = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if kind == "string_pattern_mismatch" and location in hints:
        detail = hints[location]
    return ValidationError(f"Invalid '{location}': {detail}.", code="InvalidField", target=location)
