"""The service package's shape: every module in the README's map, no import cycles, no module over 400 lines,
and no module of `services/` importing the Functions framework."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services"
MAX_LINES = 400


def modules() -> dict[str, Path]:
    return {path.stem: path for path in SERVICES.glob("*.py") if path.stem != "__init__"}


def local_imports(path: Path) -> set[str]:
    """The services modules `path` imports, at module level or inside functions (deferred imports count)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("services."):
                found.add(node.module.split(".")[1])
    return found & set(modules())


def test_readme_maps_every_service_module() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    mapped = set(re.findall(r"^  (\w+)\.py\s", readme.split("## Layout", 1)[1], flags=re.MULTILINE))
    assert mapped == set(modules())


def test_no_import_cycles() -> None:
    graph = {name: local_imports(path) for name, path in modules().items()}
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for imported in graph[name]:
            assert state.get(imported) != "open", " -> ".join([*trail, name, imported])
            if imported not in state:
                visit(imported, [*trail, name])
        state[name] = "done"

    for name in graph:
        if name not in state:
            visit(name, [])


def test_modules_stay_small_and_framework_free() -> None:
    for name, path in modules().items():
        text = path.read_text(encoding="utf-8")
        assert len(text.splitlines()) <= MAX_LINES, f"services/{name}.py is over {MAX_LINES} lines"
        assert "azure.functions" not in text and "azurefunctions" not in text, name
