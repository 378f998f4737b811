"""Deprovisioning in a browser: bob is signed in to acme when its directory deactivates him;
his next click does not reach acme's pages, and the members list no longer shows him."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Journey
from tests.support.scim import make_token, patch_body, scim_client, user_body

pytestmark = pytest.mark.browser


def test_a_member_the_directory_deactivates_loses_access_at_the_next_click(
    journey: Journey,
) -> None:
    stack = journey.stack
    token = make_token(stack)
    with scim_client(stack, token) as okta:
        created = okta.post("/Users", json=user_body("bob@acme.example", "00u-bob"))
        assert created.status_code == 201, created.text
        bob = created.json()["id"]
    assert journey.sign_in("bob@acme.example") == "/o/acme/"
    page = journey.page
    expect(page.get_by_role("link", name="Members", exact=True)).to_be_visible()

    with scim_client(stack, token) as okta:
        off = okta.patch(
            f"/Users/{bob}", json=patch_body({"op": "replace", "value": {"active": False}})
        )
        assert off.status_code == 200, off.text

    # His session is gone: the click asks for a sign-in, which the IdP answers at once (its
    # own session), and the app refuses: bob is no member of acme any more.
    journey.watch.expect_status("/callback", 403)
    page.get_by_role("link", name="Members", exact=True).click()
    page.wait_for_load_state()
    expect(page.get_by_role("heading", name="No access to this organization")).to_be_visible()
    expect(page.get_by_text("directory has deactivated your access")).to_be_visible()
    assert "/o/acme/members" not in page.url
    journey.screenshot()

    alice = stack.browser()
    try:
        assert alice.login("alice@acme.example").status_code == 200
        members = alice.get("/o/acme/members")
        assert members.status_code == 200
        assert "bob@acme.example" not in members.text
    finally:
        alice.close()
