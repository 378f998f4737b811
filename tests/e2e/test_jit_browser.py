"""Acme's just-in-time membership in a real headless Chromium (issue 14): a person from
acme.example whom nobody invited signs in through Acme's SAML page and lands in Acme with the
organization's default role. Auth0 (the dev IdP) adds them only because the seeded Acme
connection is enabled with "assign membership on login", as the app's own row says."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from saas.demo.data import organization
from tests.e2e.conftest import Journey
from tests.e2e.test_journeys import expect_role

pytestmark = pytest.mark.browser

ACME = organization("acme")


def test_a_new_acme_person_signs_in_through_saml_and_lands_as_the_default_role(
    journey: Journey,
) -> None:
    page = journey.page
    email = "maria.garcia@acme.example"
    journey.start_login(email)
    # Acme's domain routes to its SAML connection (Acme requires SSO).
    journey.wait_for(journey.stack.idp_url + "/u/login/acme-saml?")
    expect(page.get_by_label("Work email")).to_have_value(email)
    journey.sign_in_at_idp(email)
    journey.expect_url("/o/acme/")
    expect_role(journey, "Acme Corp", ACME.default_role)
    expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()
    journey.screenshot()
