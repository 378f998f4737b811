"""Every page and state of the app at 1280x800 and on a 390x844 phone: no sideways scroll,
no critical or serious axe-core violation, a screenshot of each (tests/support/layout.py).

One sign-in per person: each test signs one demo person in (the stack is reset between tests,
sessions included) and walks that person's pages at both widths, collecting every problem
before it fails, so one run names them all. Screenshots:
`test-artifacts/screenshots/layout-<page>-<width>.png`.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from uuid import UUID

import httpx
import pytest
from playwright.sync_api import Page, ViewportSize, expect
from sqlalchemy import select, update

from saas.audit.services import Actor
from saas.db.config import standalone_session
from saas.db.models import Invitation, Organization, User
from saas.invitations.services import InvitationService
from saas.tenancy.permissions import Role
from tests.e2e.conftest import Journey
from tests.support.browser import run_async
from tests.support.layout import LayoutReport, axe_version, inspect_layout
from tests.support.members_page import open_invite_form
from tests.support.stack import Stack

pytestmark = [pytest.mark.browser, pytest.mark.long_module]

WIDTHS: tuple[ViewportSize, ...] = (
    {"width": 1280, "height": 800},
    {"width": 390, "height": 844},
)


class Walk:
    """Visits page states at both widths and keeps every report."""

    def __init__(self, journey: Journey) -> None:
        self.journey = journey
        self.reports: list[LayoutReport] = []

    def visit(
        self,
        name: str,
        url: str | None = None,
        *,
        status: int | None = None,
        prepare: Callable[[Page], None] | None = None,
    ) -> None:
        """At each width: open `url` (or stay where the page is), run `prepare`, inspect."""
        page = self.journey.page
        if status is not None and url is not None:
            path = url.removeprefix(self.journey.stack.app_url).split("?", 1)[0]
            self.journey.watch.expect_status(path, status)
        for viewport in WIDTHS:
            page.set_viewport_size(viewport)
            if url is not None:
                self.journey.goto(url)
            if prepare is not None:
                prepare(page)
            self.reports.append(inspect_layout(page, f"layout-{name}"))

    def check(self) -> None:
        failures = [
            f"{report.name} at {report.width}px:\n    " + "\n    ".join(report.problems)
            for report in self.reports
            if report.problems
        ]
        assert not failures, "layout and accessibility problems:\n  " + "\n  ".join(failures)


def sign_in(journey: Journey, email: str, *, password_database: bool = False) -> None:
    journey.page.set_viewport_size(WIDTHS[0])
    journey.sign_in(email, connection="Email and password" if password_database else None)


async def _invite(stack: Stack, slug: str, email: str) -> tuple[UUID, str]:
    """An invitation written as the dashboard would (the outbox then sends it through the dev
    IdP, whose mailbox has the link)."""
    async with standalone_session(stack.settings) as db:
        org = (await db.execute(select(Organization).where(Organization.slug == slug))).scalar_one()
        alice = (
            await db.execute(select(User).where(User.email == "alice@acme.example"))
        ).scalar_one()
        invitation, _ticket = await InvitationService(session=db).invite(
            organization_id=org.id,
            email=email,
            role=Role.MEMBER,
            actor=Actor(user_id=alice.id),
            authority=None,
            ttl=datetime.timedelta(days=7),
        )
        await db.commit()
        return invitation.id, email


async def _age(stack: Stack, invitation_id: UUID, state: str) -> None:
    """Expire or withdraw an invitation whose link was sent (the row only: the link stays)."""
    now = datetime.datetime.now(datetime.UTC)
    values = (
        {"expires_at": now - datetime.timedelta(days=1)}
        if state == "expired"
        else {"revoked_at": now}
    )
    async with standalone_session(stack.settings) as db:
        await db.execute(update(Invitation).where(Invitation.id == invitation_id).values(**values))
        await db.commit()


def invitation_link(stack: Stack, email: str, timeout: float = 20.0) -> str:
    """The link of the invitation mailed to `email`, from the dev IdP's mailbox."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in httpx.get(stack.idp_url + "/__dev/mailbox.json").json()["messages"]:
            if message["to"] == email:
                return str(message["link"])
        time.sleep(0.25)
    raise AssertionError(f"no invitation email for {email}")


def sent_invitation(stack: Stack, email: str, state: str = "pending") -> str:
    invitation_id, _ = run_async(_invite(stack, "acme", email))
    link = invitation_link(stack, email)
    if state != "pending":
        run_async(_age(stack, invitation_id, state))
    return link


def test_signed_out_pages(journey: Journey) -> None:
    walk = Walk(journey)
    walk.visit("home", "/")
    # The audit is the vendored axe-core, not the older one inside axe-playwright-python.
    assert axe_version(journey.page) == "4.14.1"
    walk.visit("sign-in", "/login")
    walk.visit("not-found-anonymous", "/no-such-page", status=404)
    # The email router: an unknown domain goes on to the IdP's connection picker.
    for viewport in WIDTHS:
        journey.page.set_viewport_size(viewport)
        journey.goto("/login")
        journey.page.get_by_label("Work email").fill("someone@unknown.example")
        journey.page.get_by_role("button", name="Continue").click()
        journey.wait_for(journey.stack.idp_url + "/")
        expect(journey.page.get_by_text("Choose how you sign in")).to_be_visible()
        walk.reports.append(inspect_layout(journey.page, "layout-connection-picker"))
    walk.check()


def test_owner_pages(journey: Journey) -> None:
    stack = journey.stack
    run_async(_invite(stack, "acme", "pending.one@acme.example"))
    run_async(_invite(stack, "acme", "a.very.long.address.for.phones@acme.example"))
    sign_in(journey, "alice@acme.example")
    walk = Walk(journey)
    walk.visit("overview", "/o/acme/")
    walk.visit("members", "/o/acme/members")

    def refused_invitation(page: Page) -> None:
        open_invite_form(page)
        page.get_by_label("Email addresses").fill("carol@, dave@")
        page.get_by_role("button", name="Send invitations").click()
        expect(page.get_by_test_id("invite-email-error").locator("li")).to_have_count(2)

    journey.watch.expect_status("/o/acme/members/invitations", 422)
    walk.visit("members-invite-error", "/o/acme/members", prepare=refused_invitation)
    walk.visit("projects", "/o/acme/projects")
    walk.visit("audit", "/o/acme/audit")
    walk.visit("sso-settings", "/o/acme/settings/sso")
    walk.visit("organization-settings", "/o/acme/settings/organization")
    walk.visit("security-settings", "/o/acme/settings/security")
    walk.visit("your-sessions", "/account/sessions")
    walk.visit("home-signed-in", "/")
    walk.visit("not-found-tenant", "/o/no-such-org/", status=404)
    walk.visit("not-found-signed-in", "/o/acme/no-such-page", status=404)
    walk.check()


def test_viewer_forbidden_page(journey: Journey) -> None:
    sign_in(journey, "vera@acme.example")
    walk = Walk(journey)
    walk.visit("forbidden", "/o/acme/audit", status=403)
    walk.visit("overview-viewer", "/o/acme/")
    walk.check()


def _open_switcher(page: Page) -> None:
    switcher = page.get_by_test_id("org-switcher")
    if switcher.get_attribute("open") is None:
        switcher.locator("summary").click()
    expect(switcher.get_by_role("link").first).to_be_visible()


def test_operator_and_multi_organization_pages(journey: Journey) -> None:
    sign_in(journey, "olivia@ops.example", password_database=True)
    walk = Walk(journey)
    walk.visit("multi-org-overview", "/o/initech/")
    walk.visit("org-switcher-open", "/o/initech/", prepare=_open_switcher)
    walk.visit("operator-organizations", "/admin/")
    walk.visit("operator-organization", "/admin/organizations/acme")
    walk.visit("operator-new-organization", "/admin/organizations/new")
    walk.visit("operator-failed-jobs", "/admin/outbox")
    walk.check()


def test_invitation_pages(journey: Journey) -> None:
    stack = journey.stack
    valid = sent_invitation(stack, "newcomer@acme.example")
    expired = sent_invitation(stack, "late@acme.example", "expired")
    revoked = sent_invitation(stack, "withdrawn@acme.example", "revoked")
    wrong = sent_invitation(stack, "somebody.else@acme.example")
    walk = Walk(journey)
    page = journey.page

    def at_idp_sign_in(page: Page) -> None:
        # A valid invitation goes on to its connection's sign-in page, the address filled in.
        assert page.url.startswith(stack.idp_url + "/u/login/"), page.url
        expect(page.get_by_label("Work email")).to_have_value("newcomer@acme.example")

    walk.visit("invitation-valid", valid, prepare=at_idp_sign_in)
    walk.visit("invitation-expired", expired, status=403)
    expect(page.get_by_role("heading", level=1)).to_have_text("This invitation has expired")
    expect(page.locator(".error-card")).to_contain_text("Ask an administrator of Acme Corp")
    walk.visit("invitation-revoked", revoked, status=403)
    expect(page.get_by_role("heading", level=1)).to_have_text("This invitation was withdrawn")
    expect(page.locator(".error-card")).to_contain_text("withdrew this invitation")
    sign_in(journey, "bob@acme.example")
    walk.visit("invitation-wrong-person", wrong, status=403)
    card = page.locator(".error-card")
    expect(page.get_by_role("heading", level=1)).to_have_text("This invitation is for someone else")
    expect(card).to_contain_text("You are signed in as bob@acme.example")
    expect(card).to_contain_text("was sent to somebody.else@acme.example")
    expect(card.get_by_role("button", name="Sign out")).to_be_visible()
    walk.check()
    # Nothing was accepted: the invitation still waits for its own person.
    card.get_by_role("button", name="Sign out").click()
    journey.wait_for("/logged-out")
