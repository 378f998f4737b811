"""What a signed-in person keeps when something goes wrong, and what asks before it destroys.

- 404, 403 and `/` show who is signed in and a sign-out button; the error pages' way back
  leads into the person's organization, not to the signed-out home page.
- The organization switcher closes on Escape (focus back on its button) and on a click outside.
- "Delete connection" (SSO settings) and the operator's "Suspend" ask first: cancelling sends
  nothing, confirming does it and says so.
- Keyboard only, at 1280x800 and 390x844: the switcher opens, moves and switches; Sign out
  signs out, and the session is dead on the server.

Each state shown (the error pages, the switcher open, after a deletion or a suspension) passes
`check_layout`: no sideways scroll, no critical or serious axe-core violation, a screenshot.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Dialog, Page, ViewportSize, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.db.config import standalone_session
from saas.db.models import EnterpriseConnection, Organization
from tests.e2e.conftest import Journey
from tests.support.browser import off_loop, run_async, screenshot
from tests.support.keyboard import assert_focus_ring, tab_to
from tests.support.layout import check_layout
from tests.support.stack import Stack, in_acme

pytestmark = pytest.mark.browser


def sign_in(journey: Journey, email: str, *, password_database: bool = False) -> None:
    journey.sign_in(email, connection="Email and password" if password_database else None)


def expect_signed_in_header(page: Page, name: str) -> None:
    header = page.locator("header.topbar")
    expect(header.locator(".user-chip")).to_contain_text(name)
    expect(header.get_by_role("button", name="Sign out")).to_be_visible()
    expect(header.get_by_role("link", name="Sign in")).to_have_count(0)


def at_both_widths(page: Page, name: str) -> None:
    """`check_layout` at 1280x800 and 390x844, back to 1280x800."""
    for viewport in ({"width": 1280, "height": 800}, {"width": 390, "height": 844}):
        page.set_viewport_size(viewport)  # type: ignore[arg-type]
        check_layout(page, name)
    page.set_viewport_size({"width": 1280, "height": 800})


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
    screenshot(page, "context-403")  # audited by the layout walk ("forbidden")
    with page.expect_navigation():  # loaded (its scripts too) before the next page is opened
        back.click()
    journey.expect_url("/o/acme")

    for path in ("/o/acme/no-such-page", "/o/no-such-org/", "/no-such-page"):
        journey.watch.expect_status(path, 404)
        journey.goto(path)
        expect(page.locator(".error-card__code")).to_have_text("404")
        expect_signed_in_header(page, "Vera")
        expect(page.locator("#error-back")).to_have_attribute("href", "/o/acme")
    screenshot(page, "context-404")  # audited by the layout walk ("not-found-*")

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
        check_layout(page, "context-switcher-open")
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


@pytest.mark.parametrize(
    "viewport", [{"width": 1280, "height": 800}, {"width": 390, "height": 844}], ids=["1280", "390"]
)
def test_keyboard_only_switches_organization_and_signs_out(
    journey: Journey, viewport: ViewportSize
) -> None:
    """Olivia (Initech's owner, Globex's viewer), keys only: the switcher opens with Enter,
    ArrowDown and Tab move into it, Escape closes it with the focus back on its button, Enter on
    Globex switches; Sign out is reached with Tab and pressed with Enter, and the session it
    ended is dead on the server, not only forgotten by this browser."""
    page = journey.page
    sign_in(journey, "olivia@ops.example", password_database=True)
    journey.goto("/o/initech/")
    page.set_viewport_size(viewport)
    switcher = page.get_by_test_id("org-switcher")
    toggle = "[data-testid=org-switcher] > summary"
    globex = switcher.get_by_role("link", name="Globex Corporation")

    # Open with Enter, move with ArrowDown, close with Escape: the focus is on the toggle again.
    tab_to(page, toggle)
    assert_focus_ring(page)
    page.keyboard.press("Enter")
    expect(globex).to_be_visible()
    expect(switcher.locator("[aria-current=true]")).to_contain_text("Initech")
    page.keyboard.press("ArrowDown")
    expect(globex).to_be_focused()
    assert_focus_ring(page)
    page.keyboard.press("Escape")
    expect(globex).to_be_hidden()
    expect(page.locator(toggle)).to_be_focused()

    # Open with Space this time, Tab to Globex, Enter: signed in to Globex.
    page.keyboard.press("Space")
    expect(globex).to_be_visible()
    page.keyboard.press("Tab")
    expect(globex).to_be_focused()
    page.keyboard.press("Enter")
    journey.wait_for("/o/globex/")
    expect(page.get_by_test_id("org-switcher").locator("summary")).to_contain_text("Globex")

    # Sign out with Tab and Enter; the signed-out page; the old session cookie opens nothing.
    cookies = page.context.cookies(journey.stack.app_url)
    tab_to(page, "header.topbar button[type=submit]")
    expect(page.locator("header.topbar button[type=submit]")).to_have_text("Sign out")
    assert_focus_ring(page)
    page.keyboard.press("Enter")
    journey.wait_for("/logged-out")
    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()
    expect(page.locator("header.topbar").get_by_role("link", name="Sign in")).to_be_visible()
    browser = page.context.browser
    assert browser is not None
    replay = browser.new_context()
    try:
        replay.add_cookies(cookies)  # type: ignore[arg-type]
        answer = replay.request.get(journey.stack.app_url + "/o/globex/", max_redirects=0)
        # Sent to sign in again (to Globex's sign-in), not let in.
        assert answer.status in (302, 303), (answer.status, answer.headers)
        assert "/login" in answer.headers["location"], answer.headers
    finally:
        replay.close()


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
    at_both_widths(page, "context-sso-deleted")


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
    at_both_widths(page, "context-suspended")


LONG_NAME = "Acme" + "x" * 251  # 255 characters, the longest display name, without a space


def test_a_long_name_and_a_long_refused_domain_wrap_instead_of_widening_the_page(
    journey: Journey,
) -> None:
    async def rename(session: AsyncSession, org: Organization) -> None:
        org.display_name = LONG_NAME

    off_loop(in_acme, journey.stack.settings, rename)
    sign_in(journey, "alice@acme.example")
    page = journey.page
    journey.expect_url("/o/acme/")
    at_both_widths(page, "context-long-name-overview")
    journey.goto("/o/acme/members")
    at_both_widths(page, "context-long-name-members")

    # A refusal that quotes what was typed: a label of 80 characters is not a domain.
    journey.goto("/o/acme/settings/organization")
    journey.watch.expect_status("/o/acme/settings/organization/domains", 422)
    page.get_by_label("Add a domain").fill("d" * 80 + ".example")
    page.get_by_role("button", name="Add domain").click()
    expect(page.get_by_role("alert")).to_be_visible()
    at_both_widths(page, "context-long-domain-refused")
