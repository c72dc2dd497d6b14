"""Small typed readers for JSON config values; each names the offending key in its ConfigError."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ConfigError(ValueError):
    """A configuration the simulator cannot run with; the message names the offending key."""


def read_object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: must be a JSON object")
    return value


def read_list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(f"{where}: must be a JSON array")
    return value


def read_strings(value: object, where: str) -> list[str]:
    items = read_list(value, where)
    if not all(isinstance(item, str) and item for item in items):
        raise ConfigError(f"{where}: must be an array of non-empty strings")
    return items


def read_integers(value: object, where: str) -> list[int]:
    items = read_list(value, where)
    if not all(isinstance(item, int) and not isinstance(item, bool) for item in items):
        raise ConfigError(f"{where}: must be an array of integers")
    return items


def refuse_unknown_keys(body: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(allowed)}")


def read_string(body: Mapping[str, Any], key: str, where: str, default: str) -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{where}.{key}: must be a string")
    return value


def read_optional_string(body: Mapping[str, Any], key: str, where: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{where}.{key}: must be a string")
    return value


def read_integer(body: Mapping[str, Any], key: str, where: str, default: int, *, minimum: int) -> int:
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{where}.{key}: must be an integer >= {minimum}")
    return value


def read_number(body: Mapping[str, Any], key: str, where: str, default: float) -> float:
    value = body.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{where}.{key}: must be a number >= 0")
    return float(value)
