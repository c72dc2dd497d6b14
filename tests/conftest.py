"""Markers applied by where a test lives, so `-m` selects suites without each file declaring its own.

    unit        tests/unit: the service layer in process (what `bin/test --quick` runs)
    simulator   tests/simulator: the Azure simulator against its contract
    e2e         tests/e2e: simulator, Azurite and host as real processes
    contract    tests/contract: the published API document held against the running host
    infra       tests/infra: the Bicep templates, checkov and the deploy scripts
    bench       tests/bench: a smoke run of the benchmark harness
    browser     tests/browser: the platform page in headless Chromium against the simulator
    slow        any test that starts child processes (all of e2e, contract, bench and browser, and the few elsewhere)

`bin/test` runs the modules on worker processes (pytest-xdist, `--dist loadfile`: a module stays on one worker).

Unit tests are also kept to what `--quick` promises: starting a child process or connecting anywhere but
loopback fails the test.
"""

from __future__ import annotations

import ipaddress
import platform
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
SUITES = ("unit", "simulator", "e2e", "contract", "infra", "bench", "browser")
# Suites whose every test runs against processes started for the session.
SLOW_SUITES = frozenset({"e2e", "contract", "bench", "browser"})
# Elsewhere: modules that start processes themselves, and fixtures that do (checkov runs in its own venv).
SLOW_MODULES = frozenset({"simulator/test_cli.py", "infra/test_app_registration.py"})
SLOW_FIXTURES = frozenset({"checkov_python", "checkov_report", "checkov_pycep_version"})


def _place(item: pytest.Item) -> tuple[str | None, str]:
    try:
        relative = item.path.resolve().relative_to(TESTS)
    except ValueError:
        return None, ""
    suite = relative.parts[0] if len(relative.parts) > 1 else None
    return (suite if suite in SUITES else None), relative.as_posix()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        suite, module = _place(item)
        if suite is None:
            continue
        item.add_marker(suite)
        fixtures = set(getattr(item, "fixturenames", ()))
        if suite in SLOW_SUITES or module in SLOW_MODULES or fixtures & SLOW_FIXTURES:
            item.add_marker("slow")


# The standard library answers some platform questions with a child process (`uname -p`), once per process;
# azure-core asks them for its User-Agent. Asked here, before any guard is in place, they are cached.
platform.uname().processor  # noqa: B018


def _loopback(address: Any) -> bool:
    host = address[0] if isinstance(address, tuple) else None
    if not isinstance(host, str):
        return True  # Unix sockets and the like stay on this machine
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"


@pytest.fixture(autouse=True)
def _unit_tests_stay_in_process(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if request.node.get_closest_marker("unit") is None:
        yield
        return

    def no_child(*_: Any, **__: Any) -> None:
        raise AssertionError("a unit test started a child process; such a test belongs under tests/e2e")

    connect = socket.socket.connect
    connect_ex = socket.socket.connect_ex

    def loopback_only(method: Any) -> Any:
        def guarded(sock: socket.socket, address: Any) -> Any:
            if not _loopback(address):
                raise AssertionError(f"a unit test connected to {address!r}; unit tests use no network")
            return method(sock, address)

        return guarded

    monkeypatch.setattr(subprocess.Popen, "_execute_child", no_child)
    monkeypatch.setattr(socket.socket, "connect", loopback_only(connect))
    monkeypatch.setattr(socket.socket, "connect_ex", loopback_only(connect_ex))
    yield
