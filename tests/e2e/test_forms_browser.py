"""Refused forms in a real headless Chromium (SQLite only): htmx swaps the refusal in place of
the form alone (saas/web/refusals.py), so what else the page shows stays, and what was typed stays
in the field. Screenshots go to `test-artifacts/screenshots/forms-*.png`."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import Journey
from tests.support.browser import screenshot

pytestmark = pytest.mark.browser


def test_projects_and_sso_refusals_stay_in_their_forms(journey: Journey) -> None:
    page = journey.page
    assert journey.sign_in("alice@acme.example") == "/o/acme/"

    page.get_by_role("link", name="Projects").click()
    journey.expect_url("/o/acme/projects")  # the tabs link by route name: no trailing slash
    name = page.get_by_label("New project")
    name.fill("Roadmap")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("cell", name="Roadmap", exact=True)).to_be_visible()

    # The same name again: refused beside the field; the list and what was typed stay.
    journey.watch.expect_status("/o/acme/projects", 409)
    page.get_by_label("New project").fill("roadmap")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("alert")).to_contain_text("exists already")
    expect(page.get_by_label("New project")).to_have_value("roadmap")
    expect(page.get_by_label("New project")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("cell", name="Roadmap", exact=True)).to_be_visible()
    expect(page.get_by_text("1 project", exact=True)).to_be_visible()
    screenshot(page, "forms-project-taken")

    # Corrected, the form works again from the swapped-in copy.
    page.get_by_label("New project").fill("Backlog")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("cell", name="Backlog", exact=True)).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)

    # SSO: a discovery URL that is not https is refused in the form; the current connection's
    # card above it stays.
    page.get_by_role("link", name="Single sign-on").click()
    journey.expect_url("/o/acme/settings/sso")
    expect(page.get_by_role("heading", name="Current connection")).to_be_visible()
    journey.watch.expect_status("/o/acme/settings/sso", 422)
    page.get_by_label("OpenID Connect").check()
    page.get_by_label("Discovery URL").fill("ftp://idp.example/x")
    page.get_by_label("Client id").fill("acme-client")
    page.get_by_role("button", name="Validate and save").click()
    expect(page.locator("#sso-error")).to_contain_text("https:// URL")
    expect(page.get_by_label("Discovery URL")).to_have_value("ftp://idp.example/x")
    expect(page.get_by_label("Discovery URL")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("OpenID Connect")).to_be_checked()
    expect(page.get_by_role("heading", name="Current connection")).to_be_visible()
    expect(page.get_by_text("Acme Corp SAML")).to_be_visible()
    journey.expect_url("/o/acme/settings/sso")
    screenshot(page, "forms-sso-refused")
