"""The application context: objects made once per context, blocking calls off the loop, scoped contexts."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from services.context import AppContext, get_context, install, using
from services.errors import ConfigurationError

SUB = "11111111-1111-1111-1111-111111111111"
ACCOUNTS = {"main": {"subscriptionId": SUB, "resourceGroup": "rg", "accountName": "aoai"}}
ENV = {"AZURE_OPENAI_ACCOUNTS": json.dumps(ACCOUNTS), "AUTH_MODE": "none", "BLOCKING_THREADS": "3"}


def test_run_blocking_runs_off_the_event_loop_thread() -> None:
    context = AppContext(ENV)

    async def main() -> tuple[int, int]:
        loop_thread = threading.get_ident()
        worker = await context.run_blocking(threading.get_ident)
        return loop_thread, worker

    try:
        loop_thread, worker = asyncio.run(main())
    finally:
        context.close()
    assert loop_thread != worker


def test_objects_are_made_once_per_context_and_made_again_after_close() -> None:
    context = AppContext(ENV, credential=object())  # type: ignore[arg-type]
    first = context.deployments
    assert context.deployments is first and context.arm is first.arm
    context.close()
    assert context.deployments is not first


def test_a_bad_setting_is_logged_once_raised_on_every_use_and_named(caplog: pytest.LogCaptureFixture) -> None:
    context = AppContext({**ENV, "BLOCKING_THREADS": "many"})
    for _ in range(3):
        with pytest.raises(ConfigurationError) as raised:
            context.settings  # noqa: B018
        assert "BLOCKING_THREADS" in raised.value.message and raised.value.target == "BLOCKING_THREADS"
    assert len([r for r in caplog.records if "BLOCKING_THREADS" in r.getMessage()]) == 1


def test_using_scopes_a_context_and_install_replaces_the_process_one() -> None:
    scoped = AppContext(ENV)
    with using(scoped):
        assert get_context() is scoped
    assert get_context() is not scoped
    mine = AppContext(ENV)
    previous = install(mine)
    try:
        assert get_context() is mine
    finally:
        install(previous)


def test_start_reports_a_missing_audit_store_at_once(caplog: pytest.LogCaptureFixture) -> None:
    context = AppContext(ENV)
    with caplog.at_level("WARNING", logger="audit"):
        context.start()
    assert "No AzureWebJobsStorage setting" in caplog.text
