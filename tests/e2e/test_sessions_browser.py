"""Ending sessions across two real browsers (issue 18), in headless Chromium (SQLite only).

Bob signs in on two browsers. From the first, "Your sessions" lists both, and he signs the
other one out: that browser's next click asks him to sign in again. Then Alice, Acme's owner,
removes Bob while he is signed in: his very next click in his browser shows no Acme page but
the reason (just-in-time provisioning does not add him back), and her members list no longer
has him.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import TIMEOUT_MS, Journey
from tests.support.browser import PageWatch, serve_pictures_locally
from tests.support.layout import check_layout
from tests.support.members_page import confirm_dialog, member_row, row_action

pytestmark = pytest.mark.browser


@pytest.fixture
def second(chromium: Browser, journey: Journey) -> Iterator[Journey]:
    """Another browser (its own cookies) against the same stack."""
    context = chromium.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(TIMEOUT_MS)
    serve_pictures_locally(context)
    page = context.new_page()
    watch = PageWatch(
        origin=journey.stack.app_url, tolerated_urls={journey.stack.idp_url + "/favicon.ico"}
    )
    watch.attach(page)
    try:
        yield Journey(stack=journey.stack, page=page, watch=watch, name=journey.name + "-second")
        watch.check()
    finally:
        context.close()


def sign_in(journey: Journey, email: str) -> Page:
    assert journey.sign_in(email) == "/o/acme/"
    return journey.page


def asked_to_sign_in(journey: Journey) -> None:
    """Opening an Acme page again asks for the password at the IdP: its single sign-on
    session was revoked with the app's, so it does not sign the browser straight back in."""
    journey.page.reload()
    journey.wait_for(journey.stack.idp_url + "/u/login")
    expect(journey.page.get_by_role("heading", name="Sign in", level=1)).to_be_visible()
    # Asked how to sign in, then for the password: nothing signs the browser in by itself.
    journey.choose_connection("Acme Corp SAML")
    expect(journey.page.get_by_label("Work email")).to_be_visible()
    expect(journey.page.locator("input[name=password]")).to_be_visible()
    expect(journey.page.get_by_role("link", name="Members", exact=True)).to_have_count(0)


def told_they_were_removed(journey: Journey) -> None:
    """Opening an Acme page again: the IdP's session still signs Bob in (an Auth0 session spans
    organizations, so removal does not revoke it), and the app refuses him with the reason,
    rather than just-in-time provisioning making him a member again."""
    journey.watch.expect_status("/callback", 403)
    journey.page.reload()
    journey.wait_for("/callback")
    page = journey.page
    expect(
        page.get_by_text("You were removed from Acme Corp; ask an admin to invite you again.")
    ).to_be_visible()
    expect(page.get_by_role("link", name="Members", exact=True)).to_have_count(0)


def test_a_session_ended_from_the_other_browser_is_signed_out(
    journey: Journey, second: Journey
) -> None:
    first = sign_in(journey, "bob@acme.example")
    other = sign_in(second, "bob@acme.example")
    other.get_by_role("link", name="Members", exact=True).click()
    second.expect_url("/o/acme/members")

    journey.goto("/account/sessions")
    sessions = first.get_by_test_id("session")
    expect(sessions).to_have_count(2)
    expect(sessions.filter(has_text="this browser")).to_have_count(1)
    check_layout(first, "sessions-two-browsers")
    sessions.filter(has_not_text="this browser").get_by_role("button", name="Sign out").click()
    expect(first.get_by_test_id("session")).to_have_count(1)
    expect(first.get_by_test_id("session")).to_contain_text("this browser")

    asked_to_sign_in(second)
    # The first browser is still signed in.
    journey.goto("/o/acme/members")
    expect(first.get_by_role("heading", name="Members", level=1)).to_be_visible()


def test_a_removed_person_is_out_on_their_next_click(journey: Journey, second: Journey) -> None:
    owner = sign_in(journey, "alice@acme.example")
    bob = sign_in(second, "bob@acme.example")
    bob.get_by_role("link", name="Members", exact=True).click()
    second.expect_url("/o/acme/members")

    journey.goto("/o/acme/members")
    row = member_row(owner, "bob@acme.example")
    row_action(row, "Remove").click()
    confirm_dialog(owner, "Remove Bob Brown from Acme Corp?")
    expect(owner.get_by_test_id("toast").last).to_contain_text("was removed")
    expect(member_row(owner, "bob@acme.example")).to_have_count(0)

    # Bob's next click, in his own browser: his session for Acme ended with the removal, and
    # signing in again does not make him a member again.
    told_they_were_removed(second)
    journey.goto("/o/acme/members")
    expect(member_row(owner, "bob@acme.example")).to_have_count(0)
