"""What a signed-in person keeps when something goes wrong, and what asks before it destroys.

- 404, 403 and `/` show who is signed in and a sign-out button; the error pages' way back
  leads into the person's organization, not to the signed-out home page.
- The organization switcher closes on Escape (focus back on its button) and on a click outside.
- "Delete connection" (SSO settings) and the operator's "Suspend" ask first: cancelling sends
  nothing, confirming does it and says so.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Dialog, Page, expect
from sqlalchemy import select

from saas.db.config import standalone_session
from saas.db.models import EnterpriseConnection, Organization
from tests.e2e.conftest import Journey
from tests.support.browser import run_async, screenshot
from tests.support.stack import Stack

pytestmark = pytest.mark.browser


def sign_in(journey: Journey, email: str, *, password_database: bool = False) -> None:
    journey.start_login(email)
    if password_database:
        journey.choose_connection("Email and password")
    journey.sign_in_at_idp(email)


def expect_signed_in_header(page: Page, name: str) -> None:
    header = page.locator("header.topbar")
    expect(header.locator(".user-chip")).to_contain_text(name)
    expect(header.get_by_role("button", name="Sign out")).to_be_visible()
    expect(header.get_by_role("link", name="Sign in")).to_have_count(0)


def answer_dialogs(page: Page, accept: bool, seen: list[str]) -> None:
    def handle(dialog: Dialog) -> None:
        seen.append(dialog.message)
        if accept:
            dialog.accept()
        else:
            dialog.dismiss()

    page.once("dialog", handle)


def test_error_pages_and_home_keep_the_signed_in_header(journey: Journey) -> None:
    page = journey.page
    sign_in(journey, "vera@acme.example")

    journey.watch.expect_status("/o/acme/audit", 403)
    journey.goto("/o/acme/audit")
    expect(page.locator(".error-card__code")).to_have_text("403")
    expect_signed_in_header(page, "Vera")
    back = page.locator("#error-back")
    expect(back).to_have_text("Back to Acme Corp")
    screenshot(page, "context-403")
    back.click()
    journey.expect_url("/o/acme")

    for path in ("/o/acme/no-such-page", "/o/no-such-org/", "/no-such-page"):
        journey.watch.expect_status(path, 404)
        journey.goto(path)
        expect(page.locator(".error-card__code")).to_have_text("404")
        expect_signed_in_header(page, "Vera")
        expect(page.locator("#error-back")).to_have_attribute("href", "/o/acme")
    screenshot(page, "context-404")

    journey.goto("/")
    expect_signed_in_header(page, "Vera")
    expect(page.get_by_test_id("home-signed-in")).to_contain_text("vera@acme.example")
    page.get_by_role("link", name="Go to Acme Corp").click()
    journey.expect_url("/o/acme")


def test_error_pages_signed_out_offer_sign_in(journey: Journey) -> None:
    page = journey.page
    journey.watch.expect_status("/no-such-page", 404)
    journey.goto("/no-such-page")
    expect(page.locator("header.topbar").get_by_role("link", name="Sign in")).to_be_visible()
    expect(page.locator("#error-back")).to_have_text("Go to the home page")


def test_favicon_is_served(journey: Journey) -> None:
    response = journey.page.request.get(journey.stack.app_url + "/favicon.ico")
    assert response.status == 200
    assert response.headers["content-type"].startswith("image/svg+xml")


def test_switcher_closes_on_escape_and_click_outside(journey: Journey) -> None:
    page = journey.page
    sign_in(journey, "olivia@ops.example", password_database=True)
    journey.goto("/o/initech/")
    for viewport in ({"width": 1280, "height": 800}, {"width": 390, "height": 844}):
        page.set_viewport_size(viewport)  # type: ignore[arg-type]
        switcher = page.get_by_test_id("org-switcher")
        summary = switcher.locator("summary")
        summary.focus()
        page.keyboard.press("Enter")
        first = switcher.get_by_role("link").first
        expect(first).to_be_visible()
        box = switcher.locator(".menu__list").bounding_box()
        assert box is not None
        assert box["x"] >= 0, box
        assert box["x"] + box["width"] <= viewport["width"], box
        screenshot(page, f"context-switcher-open-{viewport['width']}")
        # Tab into the list, then Escape: closed, focus back on the button.
        page.keyboard.press("Tab")
        page.keyboard.press("Escape")
        expect(first).to_be_hidden()
        expect(summary).to_be_focused()
        # A click outside closes it too.
        summary.click()
        expect(first).to_be_visible()
        page.locator("main h1").first.click()
        expect(first).to_be_hidden()


async def _connection_names(stack: Stack, slug: str) -> list[str]:
    async with standalone_session(stack.settings) as db:
        org_id = (
            await db.execute(select(Organization.id).where(Organization.slug == slug))
        ).scalar_one()
        rows = await db.execute(
            select(EnterpriseConnection.auth0_connection_name).where(
                EnterpriseConnection.organization_id == org_id
            )
        )
        return list(rows.scalars())


async def _status(stack: Stack, slug: str) -> str:
    async with standalone_session(stack.settings) as db:
        return str(
            (
                await db.execute(select(Organization.status).where(Organization.slug == slug))
            ).scalar_one()
        )


def test_deleting_the_sso_connection_asks_first(journey: Journey) -> None:
    page = journey.page
    stack = journey.stack
    sign_in(journey, "alice@acme.example")
    journey.goto("/o/acme/settings/sso")
    expect(page.get_by_test_id("sso-lockout-warning")).to_contain_text("requires single sign-on")
    delete = page.get_by_role("button", name="Delete connection")

    seen: list[str] = []
    answer_dialogs(page, accept=False, seen=seen)
    delete.click()
    expect(delete).to_be_visible()
    assert len(seen) == 1
    assert "nobody whose email domain belongs to Acme Corp can sign in" in seen[0], seen
    assert run_async(_connection_names(stack, "acme")) == ["acme-saml"]
    journey.expect_url("/o/acme/settings/sso")

    answer_dialogs(page, accept=True, seen=seen)
    delete.click()
    expect(page.get_by_test_id("flash")).to_contain_text("The SSO connection was deleted.")
    expect(page.get_by_role("button", name="Delete connection")).to_have_count(0)
    assert run_async(_connection_names(stack, "acme")) == []
    screenshot(page, "context-sso-deleted")


def test_suspending_an_organization_asks_first(journey: Journey) -> None:
    page = journey.page
    stack = journey.stack
    sign_in(journey, "olivia@ops.example", password_database=True)
    journey.goto("/admin/organizations/globex")
    suspend = page.get_by_role("button", name="Suspend Globex Corporation")

    seen: list[str] = []
    answer_dialogs(page, accept=False, seen=seen)
    suspend.click()
    expect(suspend).to_be_visible()
    assert len(seen) == 1
    assert seen[0].startswith("Suspend Globex Corporation? Its people cannot sign in"), seen
    assert run_async(_status(stack, "globex")) == "active"

    answer_dialogs(page, accept=True, seen=seen)
    suspend.click()
    expect(page.get_by_test_id("org-status")).to_have_text("suspended")
    expect(page.get_by_role("button", name="Reactivate Globex Corporation")).to_be_visible()
    assert run_async(_status(stack, "globex")) == "suspended"
    screenshot(page, "context-suspended")
