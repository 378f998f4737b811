"""The DESIGN.md journeys in a real browser: headless Chromium against the app and the dev IdP,
each on its own real socket, one fresh stack per test.

Each test saves a full-page screenshot of its key step to
`test-artifacts/screenshots/<test name>.png`. Every page is checked for the generic error page,
and the `journey` fixture fails the test on console errors and on failed requests or
unexpected error statuses from the app's origin.
"""

from __future__ import annotations

import datetime
import time

import httpx
import pytest
from playwright.sync_api import expect

from saas.audit.services import Actor
from saas.config import Settings
from saas.db.config import create_sqlalchemy_config
from saas.demo.data import DEMO_PASSWORD, organization
from saas.devidp.seed import ROLE_IDS
from saas.invitations.services import InvitationService
from saas.organizations.services import OrganizationRepository
from saas.tenancy.permissions import Role
from tests.e2e.conftest import Journey
from tests.support.browser import run_async

pytestmark = pytest.mark.browser

ACME = organization("acme")


def expect_role(journey: Journey, org_name: str, role: str) -> None:
    page = journey.page
    expect(page.get_by_test_id("org-name")).to_have_text(org_name)
    expect(page.get_by_test_id("role")).to_have_text(role)


def assert_signed_out(journey: Journey, tenant_page: str) -> None:
    """The app has no session for this browser: its tenant page answers with a sign-in."""
    response = journey.page.request.get(journey.stack.app_url + tenant_page, max_redirects=0)
    assert response.status == 303, response.status
    assert response.headers["location"].startswith(tenant_page + "login?next=")


def test_alice_signs_in_through_acme_saml(journey: Journey) -> None:
    journey.start_login("alice@acme.example")
    page = journey.page
    # Home-realm discovery skipped the chooser: straight to Acme's simulated SAML IdP.
    assert page.url.startswith(journey.stack.idp_url + "/u/login/acme-saml?")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Acme Corp SAML")
    expect(page.get_by_label("Work email")).to_have_value("alice@acme.example")
    journey.sign_in_at_idp("alice@acme.example")
    journey.expect_url("/o/acme/")
    expect_role(journey, "Acme Corp", "owner")
    expect(page.get_by_text("alice@acme.example").first).to_be_visible()
    journey.screenshot()


def test_gina_signs_in_through_globex_oidc(journey: Journey) -> None:
    journey.start_login("gina@globex.example")
    page = journey.page
    assert page.url.startswith(journey.stack.idp_url + "/u/login/globex-oidc?")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Globex OIDC")
    journey.sign_in_at_idp("gina@globex.example")
    journey.expect_url("/o/globex/")
    expect_role(journey, "Globex Corporation", "admin")
    journey.screenshot()


def test_olivia_picks_initech_then_switches_to_globex(journey: Journey) -> None:
    page = journey.page
    journey.start_login("olivia@ops.example")
    # No routed domain: the IdP offers every connection; Olivia uses the password database.
    journey.choose_connection("Email and password")
    journey.sign_in_at_idp("olivia@ops.example")
    journey.expect_url("/select-organization")
    expect(page.get_by_role("heading", name="Choose an organization")).to_be_visible()
    choices = page.locator(".choice-list")
    expect(choices.get_by_role("link", name="Initech")).to_be_visible()
    expect(choices.get_by_role("link", name="Globex Corporation")).to_be_visible()
    choices.get_by_role("link", name="Initech").click()
    journey.expect_url("/o/initech/")
    expect_role(journey, "Initech", "owner")

    # The switcher in the header: a new, silent authorization for the other organization.
    switcher = page.get_by_test_id("org-switcher")
    switcher.locator("summary").click()
    globex = switcher.get_by_role("link", name="Globex Corporation")
    expect(globex).to_be_visible()
    journey.screenshot()
    with page.expect_request(lambda r: r.url.startswith(journey.stack.idp_url + "/authorize")) as (
        authorize
    ):
        globex.click()
    assert "prompt=none" in authorize.value.url
    journey.expect_url("/o/globex/")
    expect_role(journey, "Globex Corporation", "viewer")


async def _invite(settings: Settings, email: str, role: Role) -> tuple[object, str]:
    config = create_sqlalchemy_config(settings)
    try:
        async with config.get_session() as session:
            org = await OrganizationRepository(session=session).get_one(slug=ACME.slug)
            invitation, ticket = await InvitationService(session=session).invite(
                organization_id=org.id,
                email=email,
                role=role,
                actor=Actor.system(),
                authority=None,
                ttl=datetime.timedelta(days=7),
            )
            await session.commit()
            return invitation.id, ticket
    finally:
        await config.get_engine().dispose()


async def _record_ticket(
    settings: Settings, invitation_id: object, auth0_id: str, ticket: str
) -> None:
    config = create_sqlalchemy_config(settings)
    try:
        async with config.get_session() as session:
            await InvitationService(session=session).record_auth0_ticket(
                invitation_id=invitation_id,  # type: ignore[arg-type]
                auth0_invitation_id=auth0_id,
                ticket=ticket,
            )
            await session.commit()
    finally:
        await config.get_engine().dispose()


def _auth0_invitation(settings: Settings, email: str, role: Role) -> dict[str, str]:
    """What the app's outbox does: create the Auth0 invitation through the Management API."""
    base = settings.auth0_base_url
    with httpx.Client(base_url=base, timeout=10) as client:
        token = client.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": settings.auth0_management_client_id,
                "client_secret": settings.auth0_management_client_secret.get_secret_value(),
                "audience": settings.auth0_management_audience,
            },
        )
        assert token.status_code == 200, token.text
        created = client.post(
            f"/api/v2/organizations/{ACME.auth0_id}/invitations",
            headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            json={
                "inviter": {"name": "Alice Anderson"},
                "invitee": {"email": email},
                "client_id": settings.auth0_client_id,
                "roles": [ROLE_IDS[role]],
                "send_invitation_email": True,
            },
        )
        # Auth0 answers 200 to a created invitation (saas/devidp/management/invitations.py).
        assert created.status_code == 200, created.text
        return created.json()


def _accept_from_mailbox(journey: Journey, email: str, inviter: str) -> None:
    """Open the dev IdP's mailbox, follow the invitation link, sign in through Acme's SAML."""
    page = journey.page
    journey.goto(journey.stack.idp_url + "/__dev/mailbox")
    row = page.locator("tr", has_text=email)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("You've been invited to join Acme Corp")
    link = row.get_by_role("link", name="Accept invitation")
    href = link.get_attribute("href") or ""
    assert href.startswith(journey.stack.app_url + "/invitation?invitation=")
    assert f"organization={ACME.auth0_id}" in href
    link.click()
    # Carol's domain routes to Acme, which requires SSO: the app sends her straight to Acme's
    # simulated SAML IdP (the demo password works there), which knows the invitation.
    journey.wait_for(journey.stack.idp_url + "/u/login/acme-saml?")
    expect(page.get_by_text(f"You were invited to join Acme Corp by {inviter}")).to_be_visible()
    expect(page.get_by_label("Work email")).to_have_value(email)
    journey.sign_in_at_idp(email, DEMO_PASSWORD)
    journey.expect_url("/o/acme/")
    expect_role(journey, "Acme Corp", "member")
    expect(page.get_by_text(f"Signed in as {email}")).to_be_visible()


# The in-process outbox worker would create a second Auth0 invitation for the same app
# invitation and overwrite the ticket recorded here; this variant does its job by hand.
@pytest.mark.parametrize("stack_overrides", [{"outbox_worker_enabled": False}], ids=["by-hand"])
def test_carol_accepts_an_invitation_from_the_mailbox(journey: Journey) -> None:
    """The invitation made step by step: the app's row, the Auth0 invitation through the
    Management API, and the Auth0 ticket recorded on the app's row."""
    settings = journey.stack.settings
    email = "carol@acme.example"
    invitation_id, _ = run_async(_invite(settings, email, Role.MEMBER))
    auth0 = _auth0_invitation(settings, email, Role.MEMBER)
    run_async(_record_ticket(settings, invitation_id, auth0["id"], auth0["ticket_id"]))
    _accept_from_mailbox(journey, email, inviter="Alice Anderson")
    journey.screenshot()


def test_carol_accepts_an_invitation_sent_by_the_outbox(journey: Journey) -> None:
    """The real path: the app only writes its invitation; the outbox worker creates the Auth0
    invitation (which emails the link) and records its ticket."""
    settings = journey.stack.settings
    email = "carol@acme.example"
    run_async(_invite(settings, email, Role.MEMBER))
    _wait_for_mail(journey.stack.idp_url, email)
    # Inviter: the system (no user), so the organization's name stands in.
    _accept_from_mailbox(journey, email, inviter="Acme Corp")
    journey.screenshot()


def _wait_for_mail(idp_url: str, recipient: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = httpx.get(idp_url + "/__dev/mailbox.json", timeout=5).json()["messages"]
        if any(m["to"] == recipient for m in messages):
            return
        time.sleep(0.1)
    raise AssertionError(f"no email to {recipient} within {timeout} s")


def _sign_up_at_idp(journey: Journey, email: str) -> None:
    """From the IdP's password page, follow "Sign up" and create an account for `email`."""
    page = journey.page
    page.get_by_role("link", name="Sign up").click()
    journey.wait_for(journey.stack.idp_url + "/u/signup?")
    page.get_by_label("Your name").fill("Bob Brown")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill("a-new-password-1")
    page.get_by_role("button", name="Sign up").click()
    journey.wait_for(journey.stack.app_url + "/")


def test_require_sso_user_cannot_use_the_password_database(journey: Journey) -> None:
    """Bob gets past home-realm discovery with a personal address, then creates a password
    account for his Acme address at the IdP: the app still refuses it, Acme requires SSO."""
    page = journey.page
    journey.watch.expect_status("/callback", 403)
    journey.start_login("bob@personal.example")
    journey.choose_connection("Email and password")
    with page.expect_response(lambda r: r.url.startswith(journey.stack.app_url + "/callback")) as (
        callback
    ):
        _sign_up_at_idp(journey, "bob@acme.example")
    assert callback.value.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text("Use your company's single sign-on")
    expect(page.get_by_role("alert")).to_contain_text("requires signing in through its single")
    journey.screenshot()
    assert_signed_out(journey, "/o/acme/")


def test_password_sign_up_cannot_enter_an_organization_uninvited(journey: Journey) -> None:
    """Starting at Initech's sign-in (no routed connection), Bob signs up with the password
    database: the IdP itself refuses him, he is not an Initech member, and the app says so."""
    page = journey.page
    journey.watch.expect_status("/callback", 400)
    journey.goto("/o/initech/login")
    journey.choose_connection("Email and password")
    with page.expect_response(lambda r: r.url.startswith(journey.stack.app_url + "/callback")) as (
        callback
    ):
        _sign_up_at_idp(journey, "bob@acme.example")
    assert callback.value.status == 400
    expect(page.get_by_role("heading", level=1)).to_have_text("We could not sign you in")
    expect(page.get_by_role("alert")).to_contain_text("does not have access to this organization")
    expect(page.get_by_role("alert")).not_to_contain_text("org_")
    journey.screenshot()
    assert_signed_out(journey, "/o/initech/")


def test_logout_ends_the_session_at_both_ends(journey: Journey) -> None:
    page = journey.page
    stack = journey.stack
    journey.start_login("alice@acme.example")
    journey.sign_in_at_idp("alice@acme.example")
    journey.expect_url("/o/acme/")
    page.get_by_role("button", name="Sign out").click()
    journey.expect_url("/logged-out")
    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()
    journey.screenshot()
    # The app's session is gone: the tenant page starts a new sign-in ...
    page.goto(stack.app_url + "/o/acme/")
    journey.wait_for(stack.idp_url + "/u/login?")
    # ... and so is the IdP's: a silent authorization falls back to the interactive page.
    with page.expect_request(lambda r: "prompt=none" in r.url) as silent:
        page.goto(stack.app_url + "/o/acme/login?silent=true")
    assert silent.value.url.startswith(stack.idp_url + "/authorize?")
    journey.wait_for(stack.idp_url + "/u/login?")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
