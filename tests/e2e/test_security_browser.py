"""Require MFA in a real headless Chromium (SQLite only): Alice, Acme's owner, turns it on on
the Security page and is asked for a second factor at once (her session had none): she enrolls
an authenticator from the QR page's key and a TOTP code, signs out, and signs in again with a
fresh code. Your sessions lists this browser. Each page, the dev IdP's enrollment (QR code)
and challenge pages included, passes `check_layout` at 1280x800 and 390x844; screenshots go
to `test-artifacts/screenshots/security-<state>-<width>.png`."""

from __future__ import annotations

import time

import pyotp
import pytest
from playwright.sync_api import Page, expect

from saas.demo.data import DEMO_PASSWORD
from tests.e2e.conftest import Journey
from tests.support.browser import screenshot
from tests.support.layout import check_layout, horizontal_overflow

pytestmark = pytest.mark.browser


def _both_sizes(page: Page, name: str, *, audit: bool = True) -> None:
    """`check_layout` at both sizes: the app's pages and the dev IdP's (what people see in
    development) alike. `audit=False` for a page tests/e2e/test_layouts_browser.py audits
    already: then only the sideways scroll and the screenshots."""
    for size in ({"width": 1280, "height": 800}, {"width": 390, "height": 844}):
        page.set_viewport_size(size)  # type: ignore[arg-type]
        if audit:
            check_layout(page, name)
        else:
            overflow = horizontal_overflow(page)
            assert overflow == 0, f"{name}: scrolls {overflow}px sideways at {size['width']}"
            screenshot(page, f"{name}-{size['width']}")
    page.set_viewport_size({"width": 1280, "height": 800})


def _fresh_code(secret: str, used: set[str]) -> str:
    totp = pyotp.TOTP(secret)
    for offset in (0, 30):
        code = totp.at(time.time() + offset)
        if code not in used:
            used.add(code)
            return code
    raise AssertionError("no fresh code")


def test_owner_requires_mfa_enrolls_and_signs_in_again_with_a_code(journey: Journey) -> None:
    page = journey.page
    idp = journey.stack.idp_url
    assert journey.sign_in("alice@acme.example") == "/o/acme/"

    page.get_by_role("link", name="Security").click()
    journey.expect_url("/o/acme/settings/security")
    expect(page.get_by_role("heading", name="Security", level=1)).to_be_visible()
    _both_sizes(page, "security-settings", audit=False)

    # A bad timeout is refused in the form, beside its field; nothing is saved.
    journey.watch.expect_status("/o/acme/settings/security", 422)
    page.get_by_label("Idle timeout (minutes)").fill("600")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("at most 30 minutes")
    expect(page.get_by_label("Idle timeout (minutes)")).to_have_attribute("aria-invalid", "true")
    _both_sizes(page, "security-refused")

    page.get_by_label("Idle timeout (minutes)").fill("20")
    page.get_by_label("Require multi-factor authentication to sign in").check()
    page.get_by_role("button", name="Save").click()

    # Her session was opened without MFA: stepped up before she may go on.
    page.wait_for_url(lambda url: url.startswith(idp + "/u/mfa"))
    expect(page.get_by_role("heading", name="Secure your account")).to_be_visible()
    expect(page.locator(".qr svg")).to_be_visible()
    _both_sizes(page, "security-enroll")
    secret = page.get_by_test_id("totp-secret").inner_text().strip()
    used: set[str] = set()
    page.get_by_label("6-digit code").fill(_fresh_code(secret, used))
    page.get_by_role("button", name="Continue").click()
    journey.wait_for("/o/acme/settings/security")
    expect(page.get_by_text("Multi-factor sign-in: required")).to_be_visible()
    expect(page.get_by_text("20 minutes", exact=True)).to_be_visible()

    # Your sessions: this browser, the only one.
    journey.goto("/account/sessions")
    expect(page.get_by_test_id("session")).to_have_count(1)
    expect(page.get_by_text("this browser", exact=True)).to_be_visible()
    _both_sizes(page, "security-sessions", audit=False)

    # Signed out, and in again: a challenge this time, no second enrollment.
    page.get_by_role("button", name="Sign out", exact=True).first.click()
    journey.wait_for("/logged-out")
    journey.start_login("alice@acme.example")
    form = page.locator("form").filter(has=page.locator("input[name=password]"))
    form.locator("input[name=email]").fill("alice@acme.example")
    form.locator("input[name=password]").fill(DEMO_PASSWORD)
    form.locator("button[type=submit]").click()
    page.wait_for_url(lambda url: url.startswith(idp + "/u/mfa"))
    expect(page.get_by_role("heading", name="Verify your identity")).to_be_visible()
    expect(page.get_by_test_id("totp-secret")).to_have_count(0)
    _both_sizes(page, "security-challenge")
    page.get_by_label("6-digit code").fill(_fresh_code(secret, used))
    page.get_by_role("button", name="Continue").click()
    journey.wait_for("/o/acme/")
    expect(page.get_by_role("link", name="Security")).to_be_visible()
