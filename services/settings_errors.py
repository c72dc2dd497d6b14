"""Turn pydantic's errors about app settings into one ConfigurationError an operator can act on.

The message names each variable (and, inside AZURE_OPENAI_ACCOUNTS, the alias and key), says what the value
must be, and echoes the value unless the field is a secret (declared with `repr=False`).
"""

from __future__ import annotations

from typing import Any

from annotated_types import Ge, Le
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from .accounts import ACCOUNTS_EXAMPLE, Account, account_keys
from .errors import ConfigurationError

_NUMBER_ERRORS = frozenset(
    {
        "int_parsing",
        "int_from_float",
        "int_type",
        "float_parsing",
        "float_type",
        "finite_number",
        "greater_than_equal",
        "less_than_equal",
    }
)
_MOST_REPORTED = 3
_LONGEST_ECHO = 80


def configuration_error(error: PydanticValidationError, settings_cls: type[BaseModel]) -> ConfigurationError:
    """One ConfigurationError for every problem pydantic found; `target` is the first variable named."""
    fields = _fields_by_name(settings_cls)
    problems: list[str] = []
    unknown: dict[str, list[str]] = {}
    errors = [_named(details, settings_cls) for details in error.errors()]
    for details in errors:
        loc = details["loc"]
        if details["type"] == "extra_forbidden" and len(loc) > 1:
            unknown.setdefault(_where(loc[:-1]), []).append(str(loc[-1]))
            continue
        problems.append(_problem(details, _field_at(loc, fields)))
    for where, keys in unknown.items():
        problems.append(f"{where} has unknown keys {sorted(keys)}; allowed: {sorted(account_keys())}.")
    target = str(errors[0]["loc"][0]) if errors and errors[0]["loc"] else None
    message = " ".join(dict.fromkeys(problems[:_MOST_REPORTED]))
    if len(problems) > _MOST_REPORTED:
        message += f" ({len(problems) - _MOST_REPORTED} more problems not shown.)"
    return ConfigurationError(message, target=target)


def _named(details: ErrorDetails, settings_cls: type[BaseModel]) -> ErrorDetails:
    """The error located by variable name (pydantic uses the field name for a default it validated)."""
    loc = details["loc"]
    field = settings_cls.model_fields.get(str(loc[0])) if loc else None
    if field is None:
        return details
    choices = getattr(field.validation_alias, "choices", None)
    name = str(choices[0]) if choices else field.alias or str(loc[0])
    return {**details, "loc": (name, *loc[1:])}


def _fields_by_name(settings_cls: type[BaseModel]) -> dict[str, FieldInfo]:
    """Each field under every variable name it is read from."""
    found: dict[str, FieldInfo] = {}
    for name, field in settings_cls.model_fields.items():
        choices = getattr(field.validation_alias, "choices", None)
        for alias in choices or [field.alias or name]:
            found[str(alias)] = field
    return found


def _field_at(loc: tuple[int | str, ...], fields: dict[str, FieldInfo]) -> FieldInfo | None:
    """The field a location points at: a setting, or (AZURE_OPENAI_ACCOUNTS, alias, key) a key of an account."""
    if not loc:
        return None
    field = fields.get(str(loc[0]))
    if len(loc) == 1 or field is None:
        return field
    if len(loc) >= 3 and loc[2] != "[key]":
        return next((f for f in Account.model_fields.values() if f.alias == loc[2]), None)
    return None


def _where(loc: tuple[int | str, ...]) -> str:
    """AZURE_OPENAI_ACCOUNTS['main'].inferenceDeployments[0], from pydantic's location."""
    text = str(loc[0]) if loc else "settings"
    for depth, part in enumerate(loc[1:], start=1):
        if part == "[key]":
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        elif depth == 1:
            text += f"['{part}']"
        else:
            text += f".{part}"
    return text


def _problem(details: ErrorDetails, field: FieldInfo | None) -> str:
    loc = details["loc"]
    kind = details["type"]
    where = _where(loc)
    if kind == "setting":
        predicate = details["msg"]
    elif kind == "missing":
        if len(loc) > 1:
            return f"{where} is required (a non-empty string)."
        hint = f". Set it to {field.description}" if field is not None and field.description else ""
        return f"{where} is not set{hint}."
    elif len(loc) == 2 and loc[1] != "[key]" and field is None:
        predicate = f"must be an object like {ACCOUNTS_EXAMPLE}"
    elif kind in _NUMBER_ERRORS and field is not None and (bounds := _bounds(field)):
        low, high = bounds
        kind_of_number = "a whole number" if field.annotation is int else "a number"
        predicate = f"must be {kind_of_number} from {_plain(low)} to {_plain(high)}"
    elif field is not None and field.description:
        predicate = f"must be {field.description}"
    else:
        predicate = details["msg"][:1].lower() + details["msg"][1:]
    got = _got(details, field)
    example = field.default if field is not None and len(loc) == 1 else None
    if isinstance(example, str) and example and example not in predicate and "e.g." not in predicate:
        predicate += f", e.g. {example}"
    return f"{where} {predicate}{got}."


def _bounds(field: FieldInfo) -> tuple[float, float] | None:
    low = next((m.ge for m in field.metadata if isinstance(m, Ge)), None)
    high = next((m.le for m in field.metadata if isinstance(m, Le)), None)
    if isinstance(low, int | float) and isinstance(high, int | float):
        return float(low), float(high)
    return None


def _plain(number: float) -> str:
    """1024, 0.05: a bound as an operator would write it (never 1.04858e+08)."""
    return str(int(number)) if number.is_integer() else repr(number)


def _got(details: ErrorDetails, field: FieldInfo | None) -> str:
    """ "; got '<value>'", unless the value is a secret or not a scalar."""
    value: Any = details.get("input")
    if field is not None and not field.repr:
        return ""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return ""
    shown = str(value) if len(str(value)) <= _LONGEST_ECHO else f"{str(value)[:_LONGEST_ECHO]}..."
    return f"; got '{shown}'"
