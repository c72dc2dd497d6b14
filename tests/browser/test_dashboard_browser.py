"""The platform page as its users meet it, in headless Chromium: what it shows, what it lets each role do."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from services.auth import encode_principal
from tests.browser.conftest import HOSTILE, Served, page_config

TIMEOUT_MS = 15_000


class Opened:
    """A page of the dashboard, with every console error and uncaught exception it produced."""

    def __init__(self, browser: Any, url: str, headers: dict[str, str] | None = None) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, extra_http_headers=headers or {})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))
        self.page.goto(f"{url}/api/dashboard")

    def row(self, name: str) -> Any:
        return self.page.locator(f'#rows tbody tr[data-name="{name}"]')

    def close(self) -> None:
        self.context.close()


def principal(*roles: str) -> dict[str, str]:
    encoded = encode_principal(object_id="5b0c2c43-0000-4000-8000-0000000b0b0e", roles=list(roles), name="page tester")
    return {"X-MS-CLIENT-PRINCIPAL": encoded}


@pytest.fixture
def fresh(served: Served) -> Served:
    served.control.set_config(page_config())  # the seeded deployments again, nothing else
    return served


@pytest.fixture
def admin(fresh: Served, browser: Any) -> Iterator[Opened]:
    opened = Opened(browser, fresh.url("none", AUTH_MODE="none"))
    opened.page.wait_for_selector("#rows tbody tr")
    yield opened
    opened.close()


def test_page_shows_every_account_with_totals_and_no_console_errors(admin: Opened) -> None:
    page = admin.page
    names = page.locator("#rows tbody tr").evaluate_all("rows => rows.map(r => r.dataset.scope + '/' + r.dataset.name)")
    expected = {f"{a.alias}/{d['name']}" for a in _accounts() for d in _seeds(a.alias)}
    assert set(names) == expected
    totals = {
        row[0]: row[1:]
        for row in page.locator("#totals tbody tr, #totals tfoot tr").evaluate_all(
            "rows => rows.map(r => [...r.cells].map(c => c.textContent.trim()))"
        )
    }
    # main: support-bot and tagged are fine-tuned on Standard ($1.70/h each), vision is a base model (tokens only);
    # east: east-chat and east-reports $1.70/h, east-trial on DeveloperTier has no hosting fee.
    assert totals["main"] == ["3", "$3.40", "$2,448.00", "0"]
    assert totals["east"] == ["3", "$3.40", "$2,448.00", "0"]
    assert totals["All"] == ["6", "$6.80", "$4,896.00", "0"]
    assert "An estimate from list prices" in page.locator("#estimate-note").inner_text()
    assert page.locator("#message").is_hidden()
    assert admin.errors == []


def test_readable_on_a_phone(admin: Opened) -> None:
    admin.page.set_viewport_size({"width": 390, "height": 800})
    overflow = admin.page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= 390, f"the page is {overflow} px wide at 390 px"
    cell = admin.row("support-bot").locator("td").first
    label = cell.evaluate("td => getComputedStyle(td, '::before').content")
    assert label == '"Account"'  # each row is a card of labelled lines
    assert admin.page.locator("#totals").evaluate("t => t.scrollWidth <= t.parentElement.clientWidth")


def test_a_hostile_tag_is_shown_as_text(admin: Opened) -> None:
    row = admin.row("tagged")
    assert f"note={HOSTILE}" in row.locator(".tags").inner_text()
    assert admin.page.locator("#rows img, #totals img").count() == 0
    assert admin.page.evaluate("window.__pwned") is None
    assert admin.errors == [] and admin.dialogs == []


def test_scale_goes_through_to_succeeded_and_the_row_updates(admin: Opened, fresh: Served) -> None:
    row = admin.row("support-bot")
    assert row.locator("td.capacity").inner_text() == "1"
    row.get_by_role("button", name="Scale support-bot").click()
    admin.page.locator("#scale-capacity").fill("3")
    admin.page.locator("#scale-submit").click()
    progress = admin.page.locator("#progress li")
    progress.filter(has_text="accepted (202)").wait_for()  # the simulator provisions for a moment
    admin.row("support-bot").locator(".status", has_text="Succeeded").wait_for()
    admin.page.wait_for_function(
        "() => document.querySelector('#rows tbody tr[data-name=\"support-bot\"] td.capacity').textContent === '3'"
    )
    patches = [r for r in fresh.control.requests("arm") if r["method"] == "PATCH"]
    assert len(patches) == 1 and patches[0]["path"].endswith("/deployments/support-bot")
    assert admin.errors == []


def test_a_refused_change_shows_the_reason(admin: Opened, fresh: Served) -> None:
    admin.row("support-bot").get_by_role("button", name="Scale support-bot").click()
    admin.page.locator("#scale-capacity").fill("100000")
    admin.page.locator("#scale-submit").click()
    status = admin.row("support-bot").locator(".status", has_text="refused")
    status.wait_for()
    assert "InvalidCapacity" in status.inner_text() and "capacity" in status.inner_text().lower()
    assert not [r for r in fresh.control.requests("arm") if r["method"] == "PATCH"]
    assert admin.row("support-bot").locator("td.capacity").inner_text() == "1"


def test_delete_asks_for_confirmation_naming_the_deployment(admin: Opened, fresh: Served) -> None:
    page = admin.page
    admin.row("tagged").get_by_role("button", name="Delete tagged").click()
    dialog = page.locator("#delete-dialog")
    assert dialog.is_visible()
    assert "tagged" in page.locator("#delete-text").inner_text()
    assert page.locator("#delete-confirm").inner_text() == "Delete tagged"
    dialog.get_by_role("button", name="Cancel").click()
    assert dialog.is_hidden()
    assert not [r for r in fresh.control.requests("arm") if r["method"] == "DELETE"], "nothing deleted on cancel"
    admin.row("tagged").get_by_role("button", name="Delete tagged").click()
    page.locator("#delete-confirm").click()
    admin.page.locator("#progress li", has_text="delete: deleted").wait_for()
    admin.row("tagged").wait_for(state="detached")
    assert page.locator("#totals tfoot").inner_text().split()[:3] == ["All", "5", "$5.10"]


def test_a_read_only_caller_sees_no_action_controls(fresh: Served, browser: Any) -> None:
    opened = Opened(
        browser, fresh.url("entra", AUTH_MODE="entra", WEBSITE_AUTH_ENABLED="True"), principal("Deployments.Read")
    )
    try:
        opened.page.wait_for_selector("#rows tbody tr")
        assert opened.page.locator("#rows tbody tr").count() == 6
        assert opened.page.locator("#rows tbody button").count() == 0
        assert opened.page.locator("#audit-section").is_hidden()  # no Audit.Read either
        assert "Deployments.Read" in opened.page.locator("#caller").inner_text()
    finally:
        opened.close()


def test_a_caller_without_a_role_sees_the_403_message(fresh: Served, browser: Any) -> None:
    opened = Opened(browser, fresh.url("entra", AUTH_MODE="entra", WEBSITE_AUTH_ENABLED="True"), principal())
    try:
        message = opened.page.locator("#message")
        message.wait_for()
        assert "needs the app role 'Deployments.Read'" in message.inner_text()
        assert opened.page.locator("#list-section").is_hidden()
        assert [e for e in opened.errors if "403" not in e] == []  # only the refused request itself is logged
    finally:
        opened.close()


def test_an_idle_deployment_that_costs_money_is_marked(fresh: Served, browser: Any) -> None:
    main = _accounts()[0]
    fresh.control.shift_last_use(main.account_name, "support-bot", 10)  # no call for 10 days (Azure Monitor)
    opened = Opened(browser, fresh.url("none", AUTH_MODE="none"))
    try:
        opened.page.wait_for_selector("#rows tbody tr")
        idle = opened.row("support-bot")
        assert idle.locator(".badge", has_text="idle and costing").count() == 1
        assert "Azure removes it in 5 d" in idle.locator(".idle").inner_text()
        assert opened.row("vision").locator(".badge").count() == 0  # a base model costs nothing per hour
        assert opened.errors == []
    finally:
        opened.close()


def _accounts() -> list[Any]:
    from localdev.wiring import DEMO_ACCOUNTS

    return list(DEMO_ACCOUNTS)


def _seeds(alias: str) -> list[dict[str, Any]]:
    config = page_config()
    index = [a.alias for a in _accounts()].index(alias)
    return list(config["accounts"][index]["deployments"])
