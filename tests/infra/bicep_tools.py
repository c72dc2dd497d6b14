"""Reading the Bicep under infra/ for the infra tests: parsing, parameter files and expression walking.

`.bicep` files are parsed with pycep-parser, the parser checkov's Bicep framework runs on, so a file the tests
can read is a file checkov really scans (checkov silently drops a file pycep cannot parse: it only shows up as
a parsing error). pycep returns JSON: literals as JSON values, references (`param`, `var`, resource names)
as bare strings, functions as `{"function": {"type", "parameters"}}`, operators as `{"operator": {...}}`.

`.bicepparam` files have no parser on PyPI: pycep-parser (0.5 and 0.7) has no `using` statement, and
tree-sitter-bicep 1.1.0 parses `using` but wants a type on every `param`. So a parameter file gets a lighter,
structural check (see `parse_bicepparam`): one leading `using '<template>'`, then `param <name> = <expr>`
statements whose expressions are parsed by pycep as Bicep expressions. The Bicep CLI's `build-params` in CI
(.github/workflows) is the authoritative check.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycep import BicepParser

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"

Json = Any


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def bicepparam_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicepparam"))


def rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else str(path)


@functools.cache
def parse_bicep(path: Path) -> dict[str, Json]:
    """The pycep JSON of a .bicep file (raises on a syntax pycep does not accept)."""
    return BicepParser().parse(text=path.read_text(encoding="utf-8"))


def template(relative: str) -> dict[str, Json]:
    return parse_bicep(INFRA / relative)


def resources(doc: dict[str, Json], type_name: str) -> dict[str, dict[str, Json]]:
    """Resources of one type (case-insensitive), by symbolic name."""
    return {
        name: res for name, res in doc.get("resources", {}).items() if str(res["type"]).lower() == type_name.lower()
    }


def resource(doc: dict[str, Json], type_name: str) -> dict[str, Json]:
    """The only resource of a type; its `config` is the body (for loops: `config.config`)."""
    found = resources(doc, type_name)
    assert len(found) == 1, f"expected one {type_name}, found {sorted(found)}"
    return next(iter(found.values()))


def body(res: dict[str, Json]) -> dict[str, Json]:
    """The object literal of a resource or module, looking through a loop or a condition."""
    config = res["config"]
    if isinstance(config, dict) and "loop_type" in config:
        config = config["config"]
    if isinstance(config, dict) and "condition" in config and "config" in config:
        config = config["config"]
    return config


def param_default(doc: dict[str, Json], name: str) -> Json:
    return doc["parameters"][name].get("default")


def decorators(entry: dict[str, Json]) -> dict[str, Json]:
    return {d["type"]: d.get("argument") for d in entry.get("decorators", [])}


def unquote(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == "'" else key


def walk(value: Json) -> Iterator[Json]:
    """Every value in a parsed expression, depth first (dict keys are not yielded)."""
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def is_literal_object(value: Json) -> bool:
    return isinstance(value, dict) and not ({"function", "operator"} & set(value))


@dataclass(frozen=True)
class ObjectKeys:
    """Keys an object expression can have: literal keys, and the parameters whose (unknown) keys are merged in."""

    keys: frozenset[str]
    from_params: frozenset[str]


def object_keys(doc: dict[str, Json], value: Json) -> ObjectKeys:
    """Keys of an object-valued expression: literals, union(...), a ? b : c, and var/param references."""
    if value is None:
        return ObjectKeys(frozenset(), frozenset())
    if is_literal_object(value):
        return ObjectKeys(frozenset(unquote(k) for k in value), frozenset())
    if isinstance(value, str):
        if value in doc.get("variables", {}):
            return object_keys(doc, doc["variables"][value]["value"])
        if value in doc.get("parameters", {}):
            return ObjectKeys(frozenset(), frozenset({value}))
        raise AssertionError(f"cannot tell the keys of reference {value!r}")
    if "function" in value and value["function"]["type"] == "union":
        parts = [object_keys(doc, arg) for arg in value["function"]["parameters"].values()]
    elif "operator" in value and value["operator"]["type"] == "conditional":
        operands = value["operator"]["operands"]
        parts = [object_keys(doc, operands["true_value"]), object_keys(doc, operands["false_value"])]
    else:
        raise AssertionError(f"cannot tell the keys of {json.dumps(value)[:200]}")
    return ObjectKeys(frozenset().union(*(p.keys for p in parts)), frozenset().union(*(p.from_params for p in parts)))


def setting_names(doc: dict[str, Json], value: Json) -> ObjectKeys:
    """Names of an app-settings array expression: [{name, value}...] literals, concat(...), a ? b : c, var
    references, and for-loops over an object parameter (whose keys are unknown here: `from_params`)."""
    if isinstance(value, list):
        names = set()
        for item in value:
            assert is_literal_object(item) and set(item) == {"name", "value"}, f"not a name/value pair: {item}"
            assert isinstance(item["name"], str), item
            names.add(item["name"])
        return ObjectKeys(frozenset(names), frozenset())
    if isinstance(value, str):
        assert value in doc.get("variables", {}), f"unknown reference {value!r}"
        return setting_names(doc, doc["variables"][value]["value"])
    if "loop_type" in value:
        loop = value["loop_type"]
        assert loop["type"] == "object", "settings loops iterate an object of name -> value"
        source = loop["detail"]["object_name"]
        assert source in doc.get("parameters", {}), f"settings loop over {source!r}, not over a parameter"
        config = value["config"]
        item = loop["detail"]["item_name"]
        assert json.dumps(config["name"]) == json.dumps(_accessor(item, "key")), config
        return ObjectKeys(frozenset(), frozenset({source}))
    if "function" in value and value["function"]["type"] == "concat":
        parts = [setting_names(doc, arg) for arg in value["function"]["parameters"].values()]
    elif "operator" in value and value["operator"]["type"] == "conditional":
        operands = value["operator"]["operands"]
        parts = [setting_names(doc, operands["true_value"]), setting_names(doc, operands["false_value"])]
    else:
        raise AssertionError(f"cannot tell the setting names of {json.dumps(value)[:200]}")
    return ObjectKeys(frozenset().union(*(p.keys for p in parts)), frozenset().union(*(p.from_params for p in parts)))


def _accessor(item: str, name: str) -> Json:
    return {"operator": {"type": "property_accessor", "operands": {"operand_1": item, "operand_2": name}}}


def setting_value(doc: dict[str, Json], variable: str, name: str) -> Json:
    """The value expression of one literal name/value pair in an app-settings array variable."""
    value = doc["variables"][variable]["value"]
    if isinstance(value, dict):  # a ? [...] : []
        value = value["operator"]["operands"]["true_value"]
    (item,) = [item for item in value if item["name"] == name]
    return item["value"]


_USING = re.compile(r"^using\s+'(?P<path>[^']+)'\s*$")
_PARAM = re.compile(r"^param\s+(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*=")
_TOP_LEVEL_STATEMENT = re.compile(r"^(?P<keyword>[A-Za-z_]+)\b")


@dataclass(frozen=True)
class ParamFile:
    path: Path
    template: Path
    values: dict[str, Json]


def parse_bicepparam(path: Path) -> ParamFile:
    """Structural check and values of a .bicepparam file.

    Allowed top-level statements: one `using '<relative .bicep path>'` before anything else, then
    `param <name> = <expression>` (and comments). Each `param` becomes a `var` of the same name and the
    result is parsed by pycep, so every value is parsed as a real Bicep expression; line numbers are kept.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    using: Path | None = None
    rewritten: list[str] = []
    names: list[str] = []
    for number, line in enumerate(lines, start=1):
        statement = _TOP_LEVEL_STATEMENT.match(line)
        if statement is None:  # blank, comment, or the inside of a multi-line value
            rewritten.append(line)
            continue
        keyword = statement["keyword"]
        if keyword == "using":
            match = _USING.match(line)
            assert match, f"{rel(path)}:{number}: malformed using statement"
            assert using is None and not names, f"{rel(path)}:{number}: `using` must come first, once"
            using = (path.parent / match["path"]).resolve()
            rewritten.append("")
        elif keyword == "param":
            match = _PARAM.match(line)
            assert match, f"{rel(path)}:{number}: malformed param statement"
            assert using is not None, f"{rel(path)}:{number}: param before `using`"
            assert match["name"] not in names, f"{rel(path)}:{number}: {match['name']} set twice"
            names.append(match["name"])
            rewritten.append("var" + line[len("param") :])
        else:
            raise AssertionError(f"{rel(path)}:{number}: unexpected top-level statement {keyword!r}")
    assert using is not None, f"{rel(path)}: no `using` statement"
    parsed = BicepParser().parse(text="\n".join(rewritten) + "\n")
    values = {name: parsed["variables"][name]["value"] for name in names}
    return ParamFile(path=path, template=using, values=values)


def required_params(doc: dict[str, Json]) -> set[str]:
    return {name for name, spec in doc.get("parameters", {}).items() if "default" not in spec}


def module_path(path: Path, module: dict[str, Json]) -> Path | None:
    """The file of a local module (None for registry modules)."""
    if module.get("type") != "local":
        return None
    return (path.parent / module["detail"]["path"]).resolve()
