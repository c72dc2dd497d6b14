"""The app's registered functions are exactly the routes the README documents."""

from __future__ import annotations

import re
from pathlib import Path

from localdev.host import registered_functions, route_prefix_from_host_json, starlette_paths

README = Path(__file__).resolve().parents[2] / "README.md"


def documented_routes() -> set[tuple[str, str, str, str]]:
    text = README.read_text(encoding="utf-8")
    table = text.split("<!-- routes")[1].split("<!-- /routes -->")[0]
    rows = set()
    for line in table.splitlines():
        cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.match(r"^[a-z_]+$", cells[0]):
            rows.add((cells[0], cells[1], cells[2], cells[3]))
    return rows


def registered_routes() -> set[tuple[str, str, str, str]]:
    prefix = route_prefix_from_host_json()
    rows = set()
    for function in registered_functions():
        [path] = starlette_paths(function.route, prefix)
        for method in function.methods:
            rows.add((function.name, method, path, function.auth_level))
    return rows


def test_readme_documents_every_registered_function() -> None:
    documented = documented_routes()
    assert documented, "the README route table was not found"
    assert registered_routes() == documented


def test_route_prefix_is_the_functions_default() -> None:
    assert route_prefix_from_host_json() == "api"
