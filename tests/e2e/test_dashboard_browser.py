"""The member-management dashboard in a real headless Chromium (SQLite only).

Journey 3's dashboard half: Alice invites Carol and sees the toast and the pending
invitation, changes Bob's role inline, cannot demote herself as the last owner; search narrows
the list and the back button restores it; Bob (a member) sees no admin controls. Full-page
screenshots go to `test-artifacts/screenshots/dashboard-*.png`.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Locator, expect
from sqlalchemy import select

from saas.audit.services import Actor
from saas.db.config import standalone_session
from saas.db.models import Organization, User
from saas.members.services import MembershipService
from saas.tenancy.permissions import Role
from tests.e2e.conftest import TIMEOUT_MS, Journey
from tests.support.browser import (
    assert_no_generic_error,
    run_async,
    screenshot,
    serve_pictures_locally,
)
from tests.support.members_page import choose_role, confirm_dialog, open_invite_form
from tests.support.stack import Stack

pytestmark = pytest.mark.browser


def sign_in(journey: Journey, email: str) -> None:
    assert journey.sign_in(email) == "/o/acme/"


def member_row(journey: Journey, email: str) -> Locator:
    return journey.page.locator(f'[data-testid="member-row"][data-email="{email}"]')


def back(journey: Journey) -> None:
    """The browser's back button (history.back(): htmx then reloads the page it restores).
    Waits for that reload's own load event: the page that was showing had long been loaded, and
    a test moving on before the reload lands acts on the document the reload replaces."""
    with journey.page.expect_event("load"):
        journey.page.evaluate("history.back()")


def open_members(journey: Journey) -> None:
    journey.page.get_by_role("link", name="Members", exact=True).click()
    journey.expect_url("/o/acme/members")
    expect(journey.page.get_by_role("heading", name="Members", level=1)).to_be_visible()


def test_dashboard_alice_invites_carol_and_manages_roles(journey: Journey) -> None:
    page = journey.page
    sign_in(journey, "alice@acme.example")
    open_members(journey)
    expect(page.get_by_role("link", name="Members", exact=True)).to_have_attribute(
        "aria-current", "page"
    )
    expect(member_row(journey, "bob@acme.example")).to_contain_text("acme-saml")
    expect(page.get_by_text("No pending invitations.")).to_be_visible()
    screenshot(page, "dashboard-members-owner")

    # A malformed address is refused beside the field; nothing is sent.
    journey.watch.expect_status("/o/acme/members/invitations", 422)
    open_invite_form(page)
    page.get_by_label("Email addresses").fill("carol@")
    page.get_by_role("button", name="Send invitations").click()
    error = page.get_by_test_id("invite-email-error")
    expect(error).to_contain_text("is not a valid email address")
    expect(page.get_by_label("Email addresses")).to_have_attribute("aria-invalid", "true")
    screenshot(page, "dashboard-invite-error")

    page.get_by_label("Email addresses").fill("carol@acme.example")
    page.get_by_label("Role", exact=True).select_option("member")
    page.get_by_role("button", name="Send invitations").click()
    expect(page.get_by_test_id("toast")).to_contain_text("Invitation sent to carol@acme.example.")
    invitation = page.locator('[data-testid="invitation"][data-email="carol@acme.example"]')
    expect(invitation).to_be_visible()
    expect(invitation).to_contain_text("member")
    expect(page.get_by_label("Email addresses")).to_have_value("")
    screenshot(page, "dashboard-invited")

    # Bob's role, changed with the inline select and "Change role" (a raise: confirmed first),
    # persists across a reload.
    bob = member_row(journey, "bob@acme.example")
    choose_role(bob, "admin")
    confirm_dialog(page, "Make Bob Brown an admin?")
    expect(page.get_by_test_id("toast").last).to_contain_text("is now an admin")
    page.reload()
    journey.check_page()
    expect(member_row(journey, "bob@acme.example").get_by_test_id("role-select")).to_have_value(
        "admin"
    )

    # The last owner cannot demote herself: a clear message beside the control.
    alice = member_row(journey, "alice@acme.example")
    alice_id = (alice.get_attribute("id") or "").removeprefix("member-")
    journey.watch.expect_status(f"/o/acme/members/{alice_id}/role", 409)
    choose_role(alice, "viewer")
    message = member_row(journey, "alice@acme.example").get_by_test_id("row-error")
    expect(message).to_contain_text("last owner")
    expect(member_row(journey, "alice@acme.example").get_by_test_id("role-select")).to_have_value(
        "owner"
    )
    screenshot(page, "dashboard-last-owner")
    page.reload()
    expect(member_row(journey, "alice@acme.example").get_by_test_id("role-select")).to_have_value(
        "owner"
    )

    # The audit log tells the story.
    page.get_by_role("link", name="Audit log").click()
    journey.expect_url("/o/acme/audit")
    expect(
        page.locator('[data-testid="audit-row"][data-action="member.role_changed"]')
    ).to_be_visible()
    expect(
        page.locator('[data-testid="audit-row"][data-action="invitation.created"]')
    ).to_contain_text("carol@acme.example")
    page.get_by_label("Action").select_option("invitation.created")
    # The URL changes when the filtered rows arrive: on a loaded 2-core CI machine that once
    # took over Playwright's default 5 s.
    expect(page).to_have_url(
        re.compile(r"/o/acme/audit\?action=invitation.created$"), timeout=15_000
    )
    expect(page.get_by_test_id("audit-row")).to_have_count(1)
    screenshot(page, "dashboard-audit")


def test_dashboard_search_narrows_and_back_restores(journey: Journey) -> None:
    page = journey.page
    sign_in(journey, "alice@acme.example")
    open_members(journey)
    rows = page.get_by_test_id("member-row")
    everyone = rows.count()
    assert everyone >= 4

    page.get_by_label("Search members by name or email").press_sequentially("vera", delay=30)
    expect(page).to_have_url(re.compile(r"/o/acme/members\?q=vera$"))
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-email", "vera@acme.example")
    screenshot(page, "dashboard-search")

    page.get_by_role("link", name="Email").click()  # sort by email, search kept
    expect(page).to_have_url(re.compile(r"q=vera.*sort=email"))
    expect(rows).to_have_count(1)

    # htmx keeps no history snapshots (no tenant data in localStorage): going back reloads
    # the previous URL, which the server renders as a full page.
    back(journey)
    expect(page).to_have_url(re.compile(r"/o/acme/members\?q=vera$"))
    page.wait_for_load_state()  # the restored page's own styles and scripts, before going on
    expect(rows).to_have_count(1)
    # A search replaces the address as it is typed (Back does not walk every partial query),
    # so one more Back leaves the search, and the members page, for the page before it.
    back(journey)
    expect(page).to_have_url(re.compile(r"/o/acme/$"))
    page.wait_for_load_state()
    journey.check_page()
    open_members(journey)
    expect(rows).to_have_count(everyone)
    expect(page.get_by_label("Search members by name or email")).to_have_value("")
    journey.check_page()


async def add_viewers(stack: Stack, count: int) -> None:
    async with standalone_session(stack.settings) as session:
        acme = (
            await session.execute(select(Organization).where(Organization.slug == "acme"))
        ).scalar_one()
        members = MembershipService(session=session)
        for i in range(count):
            user = User(
                sub=f"auth0|page-{i}", email=f"page{i:02d}@acme.example", name=f"Page {i:02d}"
            )
            session.add(user)
            await session.flush()
            await members.add(
                organization_id=acme.id, user_id=user.id, role=Role.VIEWER, actor=Actor.system()
            )
        await session.commit()


def test_dashboard_pages_forward_back_and_last(journey: Journey) -> None:
    """Cursor pages in the browser: Next, Last, First, and the back button between them."""
    run_async(add_viewers(journey.stack, 30))
    page = journey.page
    sign_in(journey, "alice@acme.example")
    open_members(journey)
    rows = page.get_by_test_id("member-row")
    summary = page.get_by_test_id("members-summary")
    expect(rows).to_have_count(25)
    expect(summary).to_have_text(re.compile(r"Showing 25 of \d+ members"))
    total = int(re.search(r"of (\d+) members", summary.inner_text())[1])  # type: ignore[index]
    assert total >= 34
    first_emails = [rows.nth(i).get_attribute("data-email") for i in range(25)]

    page.get_by_role("link", name="Next →").click()
    expect(page).to_have_url(re.compile(r"/o/acme/members\?after="))
    expect(rows).to_have_count(total - 25)
    second_emails = [rows.nth(i).get_attribute("data-email") for i in range(total - 25)]
    assert not set(first_emails) & set(second_emails)
    expect(page.get_by_role("link", name="Next →")).to_have_count(0)
    screenshot(page, "dashboard-pages-next")

    # Back restores page one; forward again (a reload of the pushed URL) shows the same rows.
    back(journey)
    expect(page).to_have_url(re.compile(r"/o/acme/members$"))
    expect(rows).to_have_count(25)
    expect(rows.first).to_have_attribute("data-email", first_emails[0] or "")
    # htmx keeps no history cache (base.html): Forward reloads the pushed URL from the server,
    # a navigation of its own that the rows must wait for.
    with page.expect_event("load"):
        page.evaluate("history.forward()")
    expect(page).to_have_url(re.compile(r"after="))
    expect(rows.first).to_have_attribute("data-email", second_emails[0] or "")

    page.get_by_role("link", name="« First").click()
    expect(page).to_have_url(re.compile(r"/o/acme/members$"))
    expect(rows).to_have_count(25)
    page.get_by_role("link", name="Last »").click()
    expect(page).to_have_url(re.compile(r"at=last"))
    expect(rows).to_have_count(25)
    expect(rows.last).to_have_attribute("data-email", second_emails[-1] or "")
    journey.check_page()


def test_dashboard_member_sees_no_admin_controls(journey: Journey) -> None:
    page = journey.page
    sign_in(journey, "bob@acme.example")
    open_members(journey)
    expect(member_row(journey, "alice@acme.example")).to_contain_text("owner")
    expect(page.get_by_test_id("role-select")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^Remove"))).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("Make owner"))).to_have_count(0)
    expect(page.get_by_text("Invite people")).to_have_count(0)
    expect(page.get_by_text("Pending invitations")).to_have_count(0)
    expect(page.get_by_role("link", name="Audit log")).to_have_count(0)
    expect(page.get_by_role("button", name="Leave organization")).to_be_visible()
    screenshot(page, "dashboard-members-member")


async def remove_member(stack: Stack, email: str) -> None:
    async with standalone_session(stack.settings) as session:
        acme = (
            await session.execute(select(Organization).where(Organization.slug == "acme"))
        ).scalar_one()
        user = (await session.execute(select(User).where(User.email == email))).scalar_one()
        members = MembershipService(session=session)
        membership = await members.find(acme.id, user.id)
        assert membership is not None
        await members.remove(
            organization_id=acme.id, membership_id=membership.id, actor=Actor.system()
        )
        await session.commit()


def csrf_cookie(journey: Journey) -> str:
    cookies = {c["name"]: c["value"] for c in journey.page.context.cookies(journey.stack.app_url)}
    return cookies["saas_csrf"]


def test_a_tab_keeps_working_after_signing_in_again_elsewhere_and_a_refusal_looks_refused(
    journey: Journey,
) -> None:
    """Signing in replaces the CSRF token (a token read before sign-in must not outlive it);
    a tab opened before that still acts, because htmx sends the cookie's current token. A
    change the server refuses puts the control back as it was, beside the error."""
    page = journey.page
    sign_in(journey, "alice@acme.example")
    open_members(journey)
    before = csrf_cookie(journey)

    # Alice signs in again in a second tab (her IdP session makes it silent).
    other = page.context.new_page()
    journey.watch.attach(other)
    other.goto(journey.stack.app_url + "/o/acme/login")
    other.wait_for_url(journey.stack.app_url + "/o/acme/")
    assert csrf_cookie(journey) != before
    other.close()

    bob = member_row(journey, "bob@acme.example")
    choose_role(bob, "admin")
    confirm_dialog(page, "Make Bob Brown an admin?")
    expect(page.get_by_test_id("toast").last).to_contain_text("is now an admin")

    # Vera is removed meanwhile; changing her role is refused with the server's words, and
    # her picker shows the role she had, not the one that was not saved.
    run_async(remove_member(journey.stack, "vera@acme.example"))
    vera = member_row(journey, "vera@acme.example")
    vera_id = (vera.get_attribute("id") or "").removeprefix("member-")
    journey.watch.expect_status(f"/o/acme/members/{vera_id}/role", 404)
    choose_role(vera, "member")  # viewer -> member: no confirmation
    expect(page.get_by_test_id("toast").last).to_contain_text("Not found")
    expect(vera.get_by_test_id("role-select")).to_have_value("viewer")
    screenshot(page, "dashboard-refused-role-change")


def test_without_javascript_a_change_says_once_what_it_did(
    journey: Journey, chromium: Browser
) -> None:
    """A browser without JavaScript posts the plain form (the role picker's Change role button),
    follows the redirect, and the members page says what happened in its status region; a
    reload shows it no more. Screenshots at desktop and phone widths."""
    sign_in(journey, "alice@acme.example")
    # The same signed-in session, in a tab that runs no script (htmx never loads).
    context = chromium.new_context(
        viewport={"width": 1280, "height": 800}, java_script_enabled=False
    )
    context.set_default_timeout(TIMEOUT_MS)
    serve_pictures_locally(context)
    context.add_cookies(journey.page.context.cookies())  # type: ignore[arg-type]  # same dicts
    page = context.new_page()
    journey.watch.attach(page)
    try:
        page.goto(journey.stack.app_url + "/o/acme/members")
        bob = page.locator('[data-testid="member-row"][data-email="bob@acme.example"]')
        bob.get_by_test_id("role-select").select_option("admin")
        bob.get_by_role("button", name="Change role").click()
        page.wait_for_url(journey.stack.app_url + "/o/acme/members")
        region = page.get_by_role("status").filter(has=page.get_by_test_id("flash"))
        expect(region).to_have_count(1)
        expect(region.get_by_test_id("flash")).to_have_text("Bob Brown is now an admin.")
        expect(bob.get_by_test_id("role-select")).to_have_value("admin")
        screenshot(page, "dashboard-flash-desktop")
        page.set_viewport_size({"width": 390, "height": 844})
        expect(region.get_by_test_id("flash")).to_be_visible()
        screenshot(page, "dashboard-flash-phone")
        page.reload()
        expect(page.get_by_test_id("flash")).to_have_count(0)
        assert_no_generic_error(page)
    finally:
        context.close()
