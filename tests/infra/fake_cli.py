"""Stand-ins for az and azd for the azd hook tests: each call is logged as JSON (with the JSON file a
`--body @file` or `--parameters @file` argument names), and answered by a snippet of the test's own."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

_LOGGER = """\
import json, os, sys
args = sys.argv[1:]
entry = {"tool": os.path.basename(sys.argv[0]), "args": args}
for flag in ("--body", "--parameters"):
    if flag in args and args[args.index(flag) + 1].startswith("@"):
        with open(args[args.index(flag) + 1][1:], encoding="utf-8") as body:
            entry["body"] = json.load(body)
with open(os.environ["FAKE_LOG"], "a", encoding="utf-8") as log:
    log.write(json.dumps(entry) + "\\n")
"""


def install(folder: Path, answers: str) -> tuple[dict[str, str], Path]:
    """az and azd in `folder`/bin answering with `answers` (Python over `args`); the environment to run a hook
    with them first on PATH, and the log of their calls."""
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    for tool in ("az", "azd"):
        path = bin_dir / tool
        path.write_text(f"#!{sys.executable}\n{_LOGGER}{answers}", encoding="utf-8")
        path.chmod(0o755)
    log = folder / "calls.jsonl"
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "FAKE_LOG": str(log)}, log


def calls(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
