"""Journey 3 end to end in real browsers: Alice invites Carol from the dashboard, the outbox
sends the invitation through Auth0 (the dev IdP's mailbox), Carol follows the link and signs in
as a member, then Alice changes Carol's role and removes her."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from playwright.sync_api import Browser, expect

from saas.demo.data import DEMO_PASSWORD
from tests.e2e.conftest import TIMEOUT_MS, Journey
from tests.support.browser import PageWatch, screenshot
from tests.support.members_page import choose_role, confirm_dialog, open_invite_form, row_action

pytestmark = pytest.mark.browser
CAROL = "carol@acme.example"


def wait_for_mail(idp_url: str, email: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = httpx.get(idp_url + "/__dev/mailbox.json").json()["messages"]
        for message in messages:
            if message["to"] == email:
                return str(message["link"])
        time.sleep(0.25)
    raise AssertionError(f"no invitation email for {email}")


def test_invite_accept_change_role_and_remove(journey: Journey, chromium: Browser) -> None:
    page = journey.page
    assert journey.sign_in("alice@acme.example", next_url="/o/acme/members") == "/o/acme/members"

    open_invite_form(page)
    page.get_by_label("Email addresses").fill(CAROL)
    page.get_by_label("Role", exact=True).select_option("member")
    page.get_by_role("button", name="Send invitations").click()
    expect(page.get_by_test_id("toast")).to_contain_text(f"Invitation sent to {CAROL}.")
    link = wait_for_mail(journey.stack.idp_url, CAROL)

    # Carol, in her own browser, opens the mailbox and follows the link.
    carol_context = chromium.new_context(viewport={"width": 1280, "height": 800})
    carol_context.set_default_timeout(TIMEOUT_MS)
    carol = carol_context.new_page()
    watch = PageWatch(
        origin=journey.stack.app_url, tolerated_urls={journey.stack.idp_url + "/favicon.ico"}
    )
    watch.attach(carol)
    try:
        carol.goto(journey.stack.idp_url + "/__dev/mailbox")
        row = carol.locator("tr", has_text=CAROL)
        assert row.get_by_role("link", name="Accept invitation").get_attribute("href") == link
        row.get_by_role("link", name="Accept invitation").click()
        carol.wait_for_url(lambda url: url.startswith(journey.stack.idp_url + "/u/login/acme-saml"))
        expect(carol.get_by_label("Work email")).to_have_value(CAROL)
        carol.get_by_label("Password").fill(DEMO_PASSWORD)
        carol.locator("form button[type=submit]").click()
        carol.wait_for_url(journey.stack.app_url + "/o/acme/")
        expect(carol.get_by_test_id("role")).to_have_text("member")
        screenshot(carol, "roundtrip-carol-landed")
        watch.check()
    finally:
        carol_context.close()

    # Alice sees Carol as a member, promotes her, then removes her (confirming the dialog).
    page.reload()
    carol_row = page.locator(f'[data-testid="member-row"][data-email="{CAROL}"]')
    expect(carol_row).to_be_visible()
    expect(page.locator('[data-testid="invitation"]', has_text=CAROL)).to_have_count(0)
    choose_role(carol_row, "admin")
    confirm_dialog(page, "an admin?")
    expect(page.get_by_test_id("toast").last).to_contain_text("is now an admin")
    screenshot(page, "roundtrip-carol-admin")

    row_action(carol_row, "Remove").click()
    confirm_dialog(page, "Remove")
    expect(page.locator(f'[data-testid="member-row"][data-email="{CAROL}"]')).to_have_count(0)
    # The list reloads its page after a removal; its count then tells the truth.
    expect(page.get_by_test_id("members-summary")).to_have_text(
        re.compile(r"^Showing (\d+) of \1 members$")
    )
    page.reload()
    expect(page.locator(f'[data-testid="member-row"][data-email="{CAROL}"]')).to_have_count(0)
    journey.screenshot()
