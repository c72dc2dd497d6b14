"""Every Bicep file parses, every parameter file matches its template, every module call matches its module.

What `bicep build` / `build-params` would catch and can be checked without the Bicep CLI (which this machine
cannot install): syntax (pycep), parameter names, required parameters, literal types, module paths and
module parameters. CI runs the real CLI as well (.github/workflows).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from lark.exceptions import LarkError

from .bicep_tools import (
    INFRA,
    Json,
    bicep_files,
    bicepparam_files,
    decorators,
    is_literal_object,
    module_path,
    parse_bicep,
    parse_bicepparam,
    rel,
    required_params,
)

_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "int": int,
    "bool": bool,
    "object": dict,
    "array": list,
}


@pytest.mark.parametrize("path", bicep_files(), ids=rel)
def test_bicep_file_parses(path: Path) -> None:
    doc = parse_bicep(path)
    assert doc.get("resources") or doc.get("modules"), f"{rel(path)} declares nothing"


@pytest.mark.parametrize("path", bicep_files(), ids=rel)
def test_parameters_and_outputs_are_described(path: Path) -> None:
    doc = parse_bicep(path)
    for kind in ("parameters", "outputs"):
        for name, entry in doc.get(kind, {}).items():
            description = decorators(entry).get("description")
            assert description and len(str(description)) > 10, f"{rel(path)}: {kind[:-1]} {name} has no @description"


@pytest.mark.parametrize("path", bicep_files(), ids=rel)
def test_resource_api_versions_are_pinned(path: Path) -> None:
    for name, res in parse_bicep(path).get("resources", {}).items():
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", str(res["api_version"])), f"{rel(path)}: {name}"


@pytest.mark.parametrize("path", bicep_files(), ids=rel)
def test_module_calls_match_modules(path: Path) -> None:
    for name, module in parse_bicep(path).get("modules", {}).items():
        target = module_path(path, module)
        assert target is not None, f"{rel(path)}: module {name} is not a local file"
        assert target.is_file(), f"{rel(path)}: module {name} points at a missing {target}"
        spec = parse_bicep(target)
        config = module["config"]
        body = config["config"] if "loop_type" in config or "condition" in config else config
        passed = set(body.get("params", {}))
        unknown = passed - set(spec.get("parameters", {}))
        missing = required_params(spec) - passed
        assert not unknown, f"{rel(path)}: module {name} passes unknown parameters {sorted(unknown)}"
        assert not missing, f"{rel(path)}: module {name} misses required parameters {sorted(missing)}"
        assert body.get("name"), f"{rel(path)}: module {name} has no deployment name"


def _check_value_type(where: str, declared: str, value: Json) -> None:
    expected = _TYPES.get(declared)
    if expected is None or not (isinstance(value, str | int | bool | list) or is_literal_object(value)):
        return  # an expression: `build-params` checks it
    if expected is int:
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: expected an int"
    else:
        assert isinstance(value, expected), f"{where}: expected {declared}, got {type(value).__name__}"


@pytest.mark.parametrize("path", bicepparam_files(), ids=rel)
def test_bicepparam_matches_its_template(path: Path) -> None:
    params = parse_bicepparam(path)
    assert params.template.is_file(), f"{rel(path)}: using points at a missing {params.template}"
    assert params.template.suffix == ".bicep"
    spec = parse_bicep(params.template)["parameters"]
    unknown = set(params.values) - set(spec)
    assert not unknown, f"{rel(path)}: {sorted(unknown)} are not parameters of {rel(params.template)}"
    missing = {name for name in spec if "default" not in spec[name]} - set(params.values)
    assert not missing, f"{rel(path)}: required parameters {sorted(missing)} are not set"
    for name, value in params.values.items():
        _check_value_type(f"{rel(path)}: {name}", spec[name]["type"], value)
        allowed = decorators(spec[name]).get("allowed")
        if allowed is not None and not isinstance(value, dict):
            assert value in allowed, f"{rel(path)}: {name}={value!r} is not one of {allowed}"


def test_there_are_parameter_files_for_both_templates() -> None:
    targets = {parse_bicepparam(path).template for path in bicepparam_files()}
    assert targets == {(INFRA / "main.bicep").resolve(), (INFRA / "models" / "main.bicep").resolve()}


def test_bicepparam_check_rejects_broken_files(tmp_path: Path) -> None:
    (tmp_path / "t.bicep").write_text("param a string\n", encoding="utf-8")
    broken = {
        "no-using.bicepparam": "param a = 'x'\n",
        "late-using.bicepparam": "param a = 'x'\nusing './t.bicep'\n",
        "bad-expression.bicepparam": "using './t.bicep'\nparam a = {\n  b: \n}\n",
        "other-statement.bicepparam": "using './t.bicep'\nresource r 'x@2020-01-01' = {}\n",
    }
    for name, text in broken.items():
        file = tmp_path / name
        file.write_text(text, encoding="utf-8")
        with pytest.raises((AssertionError, LarkError)):
            parse_bicepparam(file)


def test_azd_parameters_file_matches_main() -> None:
    """infra/main.parameters.json (azd) names only parameters of main.bicep and maps every required one."""
    data = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    spec = parse_bicep(INFRA / "main.bicep")["parameters"]
    names = set(data["parameters"])
    assert names <= set(spec), f"unknown parameters: {sorted(names - set(spec))}"
    assert required_params(parse_bicep(INFRA / "main.bicep")) <= names
    for name, entry in data["parameters"].items():
        value = entry["value"]
        assert isinstance(value, str) and re.fullmatch(r"\$\{[A-Z_]+\}", value), (
            f"{name}: azd parameters come from azd environment values, e.g. ${{AZURE_ENV_NAME}}"
        )
    assert data["parameters"]["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert data["parameters"]["location"]["value"] == "${AZURE_LOCATION}"
    assert data["parameters"]["authClientId"]["value"] == "${AUTH_CLIENT_ID}"
