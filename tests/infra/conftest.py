"""Fixtures of the infra tests: checkov runs once per session, from its own virtual environment.

checkov is not installed into the project's environment: it pins `packaging<24` (which holds pytest back) and
depends on `bc-detect-secrets`, which writes the same `detect_secrets` package as `detect-secrets` (used by
bin/test), so whichever installs last silently replaces the other. The fixture creates
`.venv/checkov-<hash>` (inside the project's git-ignored venv directory) from requirements-checkov.txt the
first time, which needs PyPI once (about a minute), and reuses it afterwards. `CHECKOV_PYTHON` may name
another interpreter that has checkov (e.g. a pipx venv) instead.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from .bicep_tools import INFRA, REPO

CHECKOV_REQUIREMENTS = Path(__file__).with_name("requirements-checkov.txt")
INSTALL_TIMEOUT_SECONDS = 900
CHECKOV_TIMEOUT_SECONDS = 300


def _checkov_python() -> Path:
    """An interpreter that has the pinned checkov, creating its virtual environment on first use."""
    if os.environ.get("CHECKOV_PYTHON"):
        return Path(os.environ["CHECKOV_PYTHON"])
    digest = hashlib.sha256(CHECKOV_REQUIREMENTS.read_bytes()).hexdigest()[:12]
    venv = REPO / ".venv" / f"checkov-{digest}"
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    done = venv / ".installed"
    venv.parent.mkdir(parents=True, exist_ok=True)
    # One creator at a time: test workers (pytest-xdist) that both find it missing must not rebuild it under
    # each other's running checkov.
    with open(venv.parent / f".checkov-{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            _install_checkov(venv, python)
            done.write_text(CHECKOV_REQUIREMENTS.read_text(encoding="utf-8"), encoding="utf-8")
    return python


def _install_checkov(venv: Path, python: Path) -> None:
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                str(CHECKOV_REQUIREMENTS),
            ],
            check=True,
            timeout=INSTALL_TIMEOUT_SECONDS,
        )
    except (OSError, subprocess.SubprocessError) as error:
        pytest.fail(f"could not install checkov into {venv} (PyPI is needed once): {error}")


@pytest.fixture(scope="session")
def checkov_python() -> Path:
    return _checkov_python()


@pytest.fixture(scope="session")
def checkov_report(checkov_python: Path) -> dict[str, Any]:
    """checkov's JSON report for infra/ (framework bicep), run offline in its own process."""
    env = {
        **os.environ,
        # No network: no version check, no Prisma Cloud mappings or guidelines download.
        "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",
        "BC_SKIP_MAPPING": "TRUE",
        "LOG_LEVEL": "WARNING",
    }
    command = [
        str(checkov_python),
        "-m",
        "checkov.main",
        "--directory",
        str(INFRA),
        "--framework",
        "bicep",
        "--output",
        "json",
        "--skip-download",
    ]
    result = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=CHECKOV_TIMEOUT_SECONDS, check=False
    )
    # checkov exits 1 when a check fails; anything else (2: usage, import errors...) is a broken run.
    if result.returncode not in (0, 1) or not result.stdout.strip():
        pytest.fail(f"checkov did not run (exit {result.returncode}):\n{result.stderr[-3000:]}")
    report = json.loads(result.stdout)
    if isinstance(report, list):  # one entry per framework
        reports = [r for r in report if r.get("check_type") == "bicep"]
        assert len(reports) == 1, f"unexpected checkov report shape: {[r.get('check_type') for r in report]}"
        report = reports[0]
    assert report.get("check_type") == "bicep", report.get("check_type")
    return dict(report)


@pytest.fixture(scope="session")
def checkov_pycep_version(checkov_python: Path) -> str:
    result = subprocess.run(
        [str(checkov_python), "-c", "from importlib import metadata; print(metadata.version('pycep-parser'))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


@pytest.fixture(scope="session")
def project_pycep_version() -> str:
    return metadata.version("pycep-parser")
