"""The overview, the guided SSO set-up and the organization settings in a real headless
Chromium (SQLite only), each state passing `check_layout` at 1280x800 and 390x844 (no sideways
scroll, no critical or serious axe-core violation); screenshots go to
`test-artifacts/screenshots/setup-<state>-<width>.png`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from tests.e2e.conftest import Journey
from tests.support.browser import screenshot
from tests.support.dns_server import TxtZone
from tests.support.layout import check_layout, horizontal_overflow, measure_overflow

pytestmark = pytest.mark.browser


DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture
def stack_overrides(dns: tuple[str, TxtZone]) -> dict[str, object]:
    return {"dns_nameserver": dns[0]}


def at_both_widths(
    page: Page, name: str, *, audit: bool = True, changed: Sequence[str] = ()
) -> None:
    """`check_layout` of this state at both sizes (no sideways scroll, no serious axe-core
    violation, screenshots `setup-<name>-<width>.png`); back to desktop. `audit=False` for a
    state tests/e2e/test_layouts_browser.py audits already (the same page, the same data):
    then only the sideways scroll and the screenshots. `changed`: the only parts axe needs to
    see again, for a state that differs from an audited one only there."""
    for size in (DESKTOP, PHONE):
        page.set_viewport_size(size)
        if audit:
            check_layout(page, f"setup-{name}", changed=changed)
        else:
            overflow = horizontal_overflow(page)
            assert overflow == 0, (name, size, overflow, measure_overflow(page)[1])
            screenshot(page, f"setup-{name}-{size['width']}")
    page.set_viewport_size(DESKTOP)


def open_settings(page: Page) -> None:
    """The Settings tab, loaded (its deferred script included) before the next press: a form
    sent sooner navigates away while settings.js is still loading, which the browser reports as
    an aborted request."""
    with page.expect_navigation():
        page.get_by_role("link", name="Settings", exact=True).click()


def sign_in_as(journey: Journey, email: str) -> Page:
    assert journey.sign_in(email) == "/o/acme/"
    return journey.page


def test_overview_for_an_owner_and_a_viewer(journey: Journey) -> None:
    page = sign_in_as(journey, "alice@acme.example")
    expect(page.get_by_role("heading", name="Next steps")).to_be_visible()
    expect(page.get_by_test_id("member-count")).to_be_visible()
    expect(page.get_by_test_id("overview-sso")).to_contain_text("Acme Corp SAML")
    expect(page.get_by_test_id("overview-domain")).to_contain_text("acme.example")
    expect(page.get_by_test_id("overview-domain")).to_contain_text("verified")
    expect(page.get_by_test_id("overview-event").first).to_be_visible()
    expect(page.get_by_role("link", name="Overview")).to_have_attribute("aria-current", "page")
    at_both_widths(page, "overview-owner", audit=False)

    page.get_by_role("button", name="Sign out").click()
    journey.expect_url("/logged-out")
    page = sign_in_as(journey, "vera@acme.example")
    expect(page.get_by_test_id("member-count")).to_be_visible()
    expect(page.get_by_test_id("overview-sso")).to_have_count(0)
    expect(page.get_by_test_id("overview-events")).to_have_count(0)
    expect(page.get_by_text("Nothing to manage here")).to_be_visible()
    at_both_widths(page, "overview-viewer", audit=False)


def test_guided_sso_set_up_copy_metadata_and_test_sign_in(journey: Journey, tmp_path: Path) -> None:
    page = sign_in_as(journey, "alice@acme.example")
    page.context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=journey.stack.app_url
    )
    page.get_by_role("link", name="Single sign-on", exact=True).click()
    journey.expect_url("/o/acme/settings/sso")
    acs = f"{journey.stack.idp_url}/login/callback?connection=acme-saml"
    # The saved connection's protocol is chosen: its fields and values, not the other's.
    expect(page.get_by_label("IdP metadata XML")).to_be_visible()
    expect(page.get_by_label("Discovery URL")).to_be_hidden()
    expect(page.get_by_test_id("sp-acs-url")).to_have_text(acs)
    expect(page.get_by_test_id("sp-entity-id")).to_have_text("urn:auth0:devidp:acme-saml")
    expect(page.get_by_test_id("sp-redirect-uri")).to_be_hidden()
    expect(page.get_by_test_id("sso-status")).to_contain_text("in step with Auth0")
    at_both_widths(page, "sso-saml", audit=False)

    page.get_by_label("OpenID Connect").check()
    expect(page.get_by_label("Discovery URL")).to_be_visible()
    expect(page.get_by_label("IdP metadata XML")).to_be_hidden()
    expect(page.get_by_test_id("sp-redirect-uri")).to_have_text(
        f"{journey.stack.idp_url}/login/callback"
    )
    expect(page.get_by_test_id("sp-acs-url")).to_be_hidden()
    at_both_widths(page, "sso-oidc", changed=[".sso-setup"])

    page.get_by_label("SAML 2.0").check()
    copy = page.get_by_role("button", name="Copy ACS URL")
    expect(copy).to_be_visible()
    copy.click()
    expect(page.get_by_test_id("copy-status")).to_have_text("Copied: ACS URL (single sign-on URL)")
    assert page.evaluate("navigator.clipboard.readText()") == acs
    at_both_widths(page, "sso-copied", changed=[".sso-setup"])

    with page.expect_download() as download_info:
        page.get_by_test_id("metadata-download").click()
    download = download_info.value
    assert download.suggested_filename == "acme-saml-sp-metadata.xml"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    xml = saved.read_text()
    assert 'entityID="urn:auth0:devidp:acme-saml"' in xml
    assert f'Location="{acs.replace("&", "&amp;")}"' in xml

    page.get_by_test_id("test-sign-in").click()
    journey.wait_for(journey.stack.idp_url + "/u/login/acme-saml")
    # The IdP asks again (prompt=login); the IT admin tests with another account.
    journey.sign_in_at_idp("bob@acme.example")
    journey.expect_url("/o/acme/settings/sso/test/result")
    expect(page.get_by_test_id("test-outcome")).to_have_text("succeeded")
    claims = page.get_by_test_id("claims")
    expect(claims).to_contain_text("bob@acme.example")
    expect(claims).to_contain_text("samlp|acme-saml|bob@acme.example")
    expect(claims).to_contain_text("org_AcmeDemo00000001")
    at_both_widths(page, "sso-test-result")
    page.get_by_role("link", name="Back to single sign-on").click()
    journey.expect_url("/o/acme/settings/sso")
    # Still alice: the test signed nobody in.
    expect(page.get_by_role("navigation", name="Account")).to_contain_text("Alice")


def test_choose_the_protocol_first(journey: Journey) -> None:
    page = journey.page
    assert (
        journey.sign_in("olivia@ops.example", connection="Email and password")
        == "/select-organization"
    )
    page.locator(".choice-list").get_by_role("link", name="Initech").click()
    journey.expect_url("/o/initech/")
    journey.goto("/o/initech/settings/sso/")
    expect(page.get_by_text("Which protocol does your identity provider use?")).to_be_visible()
    expect(page.get_by_label("IdP metadata XML")).to_be_hidden()
    expect(page.get_by_label("Discovery URL")).to_be_hidden()
    expect(page.get_by_test_id("sp-values")).to_be_hidden()
    expect(page.get_by_role("button", name="Validate and save")).to_be_hidden()
    at_both_widths(page, "sso-choose")
    page.get_by_label("OpenID Connect").check()
    expect(page.get_by_label("Discovery URL")).to_be_visible()
    expect(page.get_by_test_id("sp-redirect-uri")).to_be_visible()
    expect(page.get_by_role("button", name="Validate and save")).to_be_visible()


def test_settings_rename_and_add_verify_remove_a_domain(
    journey: Journey, dns: tuple[str, TxtZone]
) -> None:
    _, zone = dns
    page = sign_in_as(journey, "alice@acme.example")
    page.get_by_role("link", name="Settings", exact=True).click()
    journey.expect_url("/o/acme/settings/organization")
    at_both_widths(page, "settings", audit=False)

    journey.watch.expect_status("/o/acme/settings/organization/name", 422)
    page.get_by_label("Display name").fill("   ")
    page.get_by_role("button", name="Save name").click()
    expect(page.get_by_text("Give the organization a name.")).to_be_visible()
    expect(page.get_by_label("Display name")).to_have_attribute("aria-invalid", "true")
    open_settings(page)
    page.get_by_label("Display name").fill("Acme Corporation")
    page.get_by_role("button", name="Save name").click()
    journey.expect_url("/o/acme/settings/organization")
    expect(page.get_by_text("now called “Acme Corporation”")).to_be_visible()

    journey.watch.expect_status("/o/acme/settings/organization/domains", 422)
    page.get_by_label("Add a domain").fill("gmail.com")
    page.get_by_role("button", name="Add domain").click()
    expect(page.get_by_text("public mailbox provider")).to_be_visible()
    expect(page.get_by_label("Add a domain")).to_have_value("gmail.com")
    at_both_widths(page, "settings-domain-refused")

    page.get_by_label("Add a domain").fill("eu.acme-corporation.example")
    page.get_by_role("button", name="Add domain").click()
    journey.expect_url("/o/acme/settings/organization")
    row = page.locator('[data-domain="eu.acme-corporation.example"]')
    expect(row.get_by_test_id("domain-status")).to_have_text("not verified")
    name = row.get_by_test_id("txt-name")
    expect(name).to_have_text("_saas-verification.eu.acme-corporation.example")
    token = row.get_by_test_id("txt-value").inner_text()
    at_both_widths(page, "settings-domain-added")

    verify_path = page.evaluate(
        'document.querySelector(\'[data-domain="eu.acme-corporation.example"] '
        "form[action$=\"/verify\"]').getAttribute('action')"
    )
    journey.watch.expect_status(verify_path, 422)
    row.get_by_role("button", name="Verify eu.acme-corporation.example").click()
    expect(
        page.get_by_text("No TXT record _saas-verification.eu.acme-corporation.example")
    ).to_be_visible()
    at_both_widths(page, "settings-verify-failed")

    zone.set_txt("_saas-verification.eu.acme-corporation.example", token)
    open_settings(page)
    row.get_by_role("button", name="Verify eu.acme-corporation.example").click()
    journey.expect_url("/o/acme/settings/organization")
    expect(page.get_by_text("eu.acme-corporation.example is verified")).to_be_visible()
    expect(row.get_by_test_id("domain-status")).to_have_text("verified")
    at_both_widths(page, "settings-domain-verified")

    page.once("dialog", lambda dialog: dialog.dismiss())
    row.get_by_role("button", name="Remove eu.acme-corporation.example").click()
    expect(row).to_be_visible()  # cancelled: nothing sent
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Remove eu.acme-corporation.example").click()
    journey.expect_url("/o/acme/settings/organization")
    expect(page.get_by_text("eu.acme-corporation.example was removed.")).to_be_visible()
    expect(row).to_have_count(0)


def test_a_test_sign_in_result_for_a_stranger_and_a_refusal(journey: Journey) -> None:
    page = sign_in_as(journey, "alice@acme.example")
    journey.goto("/o/acme/settings/sso/")
    page.get_by_test_id("test-sign-in").click()
    journey.wait_for(journey.stack.idp_url + "/u/login/acme-saml")
    # Someone the IdP lets in whom acme does not know: the connection works, and the result
    # says this person is no member here.
    journey.sign_in_at_idp("carol@acme.example")
    journey.expect_url("/o/acme/settings/sso/test/result")
    expect(page.get_by_test_id("test-outcome")).to_have_text("succeeded")
    expect(page.get_by_test_id("test-membership")).to_contain_text("not a member")
    at_both_widths(page, "sso-test-stranger")

    # The IdP refuses (Auth0 answers the callback with an error): the reason, on the page.
    journey.goto("/o/acme/settings/sso/")
    with page.expect_request(lambda request: "/authorize?" in request.url) as authorize:
        page.get_by_test_id("test-sign-in").click()
    state = parse_qs(urlsplit(authorize.value.url).query)["state"][0]
    journey.goto(f"/callback?state={state}&error=access_denied&error_description=no")
    journey.expect_url("/o/acme/settings/sso/test/result")
    expect(page.get_by_test_id("test-outcome")).to_have_text("failed")
    expect(page.get_by_test_id("test-reason")).to_contain_text("does not have access")
    at_both_widths(page, "sso-test-failed")
