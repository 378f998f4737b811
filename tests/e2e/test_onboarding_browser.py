"""Journey 4 in a real browser: an operator onboards Initrode through the console (a domain, an
OIDC connection, the first owner), verifies the domain against a local DNS server, and the
invited owner signs in through the new connection."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import expect

from saas.demo.data import DEMO_PASSWORD
from tests.e2e.conftest import Journey
from tests.support.dns_server import TxtZone

pytestmark = pytest.mark.browser
OWNER = "peter@initrode.example"


@pytest.fixture
def stack_overrides(dns: tuple[str, TxtZone]) -> dict[str, object]:
    return {"dns_nameserver": dns[0], "outbox_poll_seconds": 0.2}


def wait_until(check: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.25)


def test_operator_onboards_initrode_and_the_owner_signs_in(
    journey: Journey, dns: tuple[str, TxtZone]
) -> None:
    page, stack = journey.page, journey.stack
    journey.sign_in("olivia@ops.example", connection="Email and password")
    journey.goto("/admin/")
    page.get_by_role("link", name="New organization").first.click()
    journey.expect_url("/admin/organizations/new")

    page.get_by_label("Slug").fill("initrode")
    page.get_by_label("Display name").fill("Initrode")
    page.get_by_label("Just-in-time membership").check()
    page.get_by_label("Email domains").fill("initrode.example")
    page.get_by_label("OpenID Connect").check()
    page.get_by_label("OIDC discovery URL").fill(
        stack.idp_url + "/.well-known/openid-configuration"
    )
    page.get_by_label("OIDC client id").fill("initrode-client")
    page.get_by_label("OIDC client secret").fill("initrode-secret")
    page.get_by_label("First owner's email").fill(OWNER)
    page.get_by_role("button", name="Create organization").click()
    journey.expect_url("/admin/organizations/initrode")
    expect(page.get_by_text("unverified")).to_be_visible()
    journey.screenshot()

    # The operator publishes the TXT record the page shows, then verifies.
    record = (
        page.locator("code")
        .filter(has_text="_saas-verification.initrode.example")
        .first.inner_text()
    )
    token = page.locator("p", has_text="with the value").locator("code").nth(1).inner_text()
    dns[1].set_txt(record, token)
    page.get_by_role("button", name="Verify initrode.example").click()
    journey.expect_url("/admin/organizations/initrode")
    expect(page.locator(".badge", has_text=re.compile("^verified$"))).to_be_visible()

    # The outbox creates the organization and the connection at Auth0 and sends the invitation.
    def invitation_link() -> str | None:
        messages = httpx.get(stack.idp_url + "/__dev/mailbox.json").json()["messages"]
        return next((m["link"] for m in messages if m["to"] == OWNER), None)

    wait_until(lambda: invitation_link() is not None)
    journey.goto(stack.idp_url + "/__dev/mailbox")
    # Signing in again in the same browser as someone else: end olivia's sessions first.
    page.context.clear_cookies()
    journey.goto(str(invitation_link()))
    journey.wait_for(stack.idp_url + "/u/login/initrode-oidc-")
    expect(page.get_by_label("Work email")).to_have_value(OWNER)
    journey.sign_in_at_idp(OWNER, DEMO_PASSWORD)
    journey.expect_url("/o/initrode/")
    expect(page.get_by_test_id("role")).to_have_text("owner")
    journey.screenshot()
