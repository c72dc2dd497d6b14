"""The benchmark harness runs end to end (a smoke run, so it cannot rot). It measures; nothing here judges
a timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_benchmark_run_writes_its_report(tmp_path: Path) -> None:
    out = tmp_path / "performance.md"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--no-profile", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = out.read_text(encoding="utf-8")
    for section in (
        "## Targets",
        "## 1. Gateway overhead",
        "## 2. Reuse",
        "## 3. Image path",
        "## 4. Management",
        "## 5. Cold start",
    ):
        assert section in report
    figures = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert figures
