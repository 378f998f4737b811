"""Sync state in a real headless Chromium (SQLite only): the SSO page, where the connection was
changed, says when Auth0 refused it and why, and the admin's Retry brings it into step; while
no worker has run, it says it is waiting. Screenshots at 1280x800 and 390x844 go to
`test-artifacts/screenshots/sync-*.png`."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from saas.db.models import Organization
from saas.sso.services import connection_name
from tests.e2e.conftest import Journey
from tests.integration.test_sso_settings import metadata_xml
from tests.integration.test_sync_state import _organization, take_the_name_at_auth0
from tests.support.browser import run_async, screenshot
from tests.support.certificates import self_signed_pem

pytestmark = pytest.mark.browser

PAGE = "/o/initech/settings/sso/"


def _both_sizes(page: Page, name: str) -> None:
    screenshot(page, f"{name}-desktop")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, f"{name}-phone")
    page.set_viewport_size({"width": 1280, "height": 800})


def _olivia_saves_initech_saml(journey: Journey) -> Page:
    page = journey.page
    assert (
        journey.sign_in("olivia@ops.example", connection="Email and password")
        == "/select-organization"
    )
    page.locator(".choice-list").get_by_role("link", name="Initech").click()
    journey.expect_url("/o/initech/")
    journey.goto(PAGE)
    page.get_by_label("SAML 2.0").check()
    page.get_by_label("Button label").fill("Initech SAML")
    page.get_by_label("IdP metadata XML").fill(metadata_xml(self_signed_pem("idp.initech.example")))
    page.get_by_role("button", name="Validate and save").click()
    journey.expect_url(PAGE.rstrip("/"))
    expect(page.get_by_text("The connection “Initech SAML” was saved.")).to_be_visible()
    return page


def _reload_until(journey: Journey, state: str) -> None:
    badge = journey.page.locator(f'[data-sync="{state}"]')
    for _ in range(100):
        if badge.count():
            break
        journey.page.wait_for_timeout(200)
        journey.goto(PAGE)
    expect(badge).to_be_visible()


@pytest.mark.parametrize("stack_overrides", [{"outbox_poll_seconds": 0.2}], ids=["worker"])
def test_a_refused_connection_is_shown_failed_and_retried(journey: Journey) -> None:
    initech: Organization = run_async(_organization(journey.stack, "initech"))
    squatter = take_the_name_at_auth0(journey.stack, connection_name(initech, "samlp"))
    page = _olivia_saves_initech_saml(journey)

    _reload_until(journey, "failed")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Auth0 did not accept the last change.")
    expect(alert).to_contain_text("Auth0 already has a connection with this name")
    expect(page.get_by_text("belongs to someone else")).to_have_count(0)
    expect(page.get_by_text("active at Auth0")).to_have_count(0)
    _both_sizes(page, "sync-sso-failed")

    with journey.stack.management() as mgmt:
        handed = mgmt.patch(
            f"/connections/{squatter}",
            json={"metadata": {"saas_organization_id": str(initech.id)}},
        )
        assert handed.status_code == 200, handed.text
    alert.get_by_role("button", name="Retry").click()
    journey.expect_url(PAGE.rstrip("/"))
    expect(page.get_by_text("The change is queued for Auth0 again.")).to_be_visible()
    _reload_until(journey, "in_step")
    expect(page.get_by_text("in step with Auth0")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)
    _both_sizes(page, "sync-sso-in-step")


@pytest.mark.parametrize("stack_overrides", [{"outbox_worker_enabled": False}], ids=["no-worker"])
def test_a_saved_connection_waits_for_auth0(journey: Journey) -> None:
    page = _olivia_saves_initech_saml(journey)
    expect(page.locator('[data-sync="pending"]')).to_have_text("waiting for Auth0")
    expect(page.get_by_text("Auth0 has not confirmed the latest change yet")).to_be_visible()
    _both_sizes(page, "sync-sso-pending")
