"""The overview and the organization settings over real HTTP, on SQLite and PostgreSQL: what
each role sees, renaming, and adding / verifying (against the run's own DNS server) / removing
a domain, each refusal shown in the form with nothing written."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.services import Actor
from saas.db.models import AuditEvent, Organization, OrganizationDomain
from saas.organizations.services import MAX_PENDING_DOMAINS, OrganizationService
from tests.support.dns_server import TxtZone
from tests.support.stack import Browser, Stack, in_acme

CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')
SETTINGS = "/o/acme/settings/organization/"
TIMING = re.compile(r'sql;desc="(\d+) statements"')


@pytest.fixture
def stack_overrides(dns: tuple[str, TxtZone]) -> dict[str, object]:
    return {"dns_nameserver": dns[0]}


def signed_in(stack: Stack, email: str) -> Browser:
    browser = stack.browser()
    page = browser.login(email)
    assert page.status_code == 200, page.text
    return browser


def post(browser: Browser, path: str, data: dict[str, str] | None = None) -> httpx.Response:
    page = browser.get("/o/acme/")
    token = CSRF.search(page.text)
    assert token, page.text
    return browser.client.post(
        browser.stack.app_url + path, data={"_csrf_token": token[1], **(data or {})}
    )


def acme_state(stack: Stack) -> dict[str, Any]:
    async def work(session: AsyncSession, org: Organization) -> dict[str, Any]:
        domains = (
            await session.execute(
                select(OrganizationDomain).where(OrganizationDomain.organization_id == org.id)
            )
        ).scalars()
        events = (
            await session.execute(select(AuditEvent).where(AuditEvent.organization_id == org.id))
        ).scalars()
        return {
            "name": org.display_name,
            "domains": {d.domain: (d.is_verified, d.verification_token, d.id) for d in domains},
            "actions": sorted(e.action for e in events),
        }

    return in_acme(stack.settings, work)


def statements(response: httpx.Response) -> int:
    found = TIMING.fullmatch(response.headers["server-timing"])
    assert found, response.headers["server-timing"]
    return int(found[1])


def add_pending_domains(stack: Stack, count: int) -> None:
    async def work(session: AsyncSession, org: Organization) -> None:
        for _ in range(count):
            await OrganizationService(session=session).add_domain(
                organization_id=org.id, domain=f"d{uuid.uuid4().hex[:10]}.example",
                actor=Actor.system(),
            )  # fmt: skip

    in_acme(stack.settings, work)


def test_overview_shows_each_role_what_it_may_see_in_bounded_statements(stack: Stack) -> None:
    alice = signed_in(stack, "alice@acme.example")
    page = alice.get("/o/acme/")
    assert page.status_code == 200
    for part in ("overview-people", "overview-sso", "overview-domains", "overview-events"):
        assert f'data-testid="{part}"' in page.text, part
    assert "acme.example" in page.text
    assert 'data-sync="' in page.text  # the SSO connection's state, read from its jobs
    assert 'data-testid="pending-invitations"' in page.text
    before = statements(page)

    # More domains (each a next action), invitations and events: the same statements.
    add_pending_domains(stack, 6)
    page = alice.get("/o/acme/")
    assert page.text.count('data-testid="overview-domain"') == 7
    assert page.text.count('data-testid="overview-event"') == 5
    assert page.text.count("<strong>Verify d") == 6
    # At most: the latest events' target people are one query, only when some name people.
    assert statements(page) <= before, (before, statements(page))
    assert before <= 10

    vera = signed_in(stack, "vera@acme.example")
    page = vera.get("/o/acme/")
    assert page.status_code == 200
    assert 'data-testid="member-count"' in page.text
    for hidden in ("overview-sso", "overview-domains", "overview-events", "pending-invitations"):
        assert f'data-testid="{hidden}"' not in page.text, hidden
    assert "Nothing to manage here" in page.text
    assert "/settings/organization" not in page.text  # no Settings tab either
    assert statements(page) < before

    bob = signed_in(stack, "bob@acme.example")
    page = bob.get("/o/acme/")
    assert "work on projects" in page.text
    assert 'data-testid="overview-events"' not in page.text


def test_rename_and_every_refusal_of_a_name(stack: Stack) -> None:
    adam = signed_in(stack, "adam@acme.example")
    assert adam.get(SETTINGS).status_code == 200
    url = "/o/acme/settings/organization/name"
    start = acme_state(stack)
    for value, words in (
        ("   ", "Give the organization a name."),
        ("x" * 256, "at most 255 characters"),
        ("Acme\x00Corp", "control characters"),
        ("Acme\nCorp", "control characters"),
    ):
        refused = post(adam, url, {"display_name": value})
        assert refused.status_code == 422, (value, refused.status_code, refused.text[:300])
        assert words in refused.text, value
        assert 'id="name-error"' in refused.text
        assert 'aria-invalid="true"' in refused.text
        assert acme_state(stack) == start, value

    done = post(adam, url, {"display_name": "  Acme   Corporation "})
    assert done.status_code == 303
    assert done.headers["location"] == "/o/acme/settings/organization"
    page = adam.get(done.headers["location"])
    assert "now called “Acme Corporation”" in page.text
    state = acme_state(stack)
    assert state["name"] == "Acme Corporation"
    assert state["actions"].count("organization.renamed") == 1


def test_domains_added_verified_by_dns_and_removed(stack: Stack, dns: tuple[str, TxtZone]) -> None:
    _, zone = dns
    alice = signed_in(stack, "alice@acme.example")
    add = "/o/acme/settings/organization/domains"
    start = acme_state(stack)
    for value, status, words in (
        ("", 422, "is not a domain name"),
        ("not a domain", 422, "is not a valid internationalized domain"),
        ("bob@acme.example", 422, "is not a domain name"),
        ("gmail.com", 422, "public mailbox provider"),
        ("globex.example", 409, "already claimed"),  # globex's: one organization per domain
        ("acme.example", 409, "already claimed"),
        ("a\tb.example", 422, "control characters"),
    ):
        refused = post(alice, add, {"domain": value})
        assert refused.status_code == status, (value, refused.status_code, refused.text[:300])
        assert words in refused.text, (value, refused.text[:2000])
        assert 'id="domain-error"' in refused.text
        assert acme_state(stack) == start, value

    added = post(alice, add, {"domain": "Sub.ACME-Corp.example."})
    assert added.status_code == 303, added.text
    page = alice.get(added.headers["location"])
    assert "sub.acme-corp.example was added" in page.text
    verified, token, domain_id = acme_state(stack)["domains"]["sub.acme-corp.example"]
    assert not verified
    assert "_saas-verification.sub.acme-corp.example" in page.text
    assert token in page.text

    verify = f"/o/acme/settings/organization/domains/{domain_id}/verify"
    missing = post(alice, verify)
    assert missing.status_code == 422
    assert "No TXT record _saas-verification.sub.acme-corp.example" in missing.text
    zone.set_txt("_saas-verification.sub.acme-corp.example", "some-other-value")
    assert post(alice, verify).status_code == 422
    assert acme_state(stack)["domains"]["sub.acme-corp.example"][0] is False

    zone.set_txt("_saas-verification.sub.acme-corp.example", "unrelated", token)
    done = post(alice, verify)
    assert done.status_code == 303, done.text
    assert "is verified" in alice.get(done.headers["location"]).text
    assert acme_state(stack)["domains"]["sub.acme-corp.example"][0] is True
    assert post(alice, verify).status_code == 303  # again: nothing to do

    removed = post(alice, f"/o/acme/settings/organization/domains/{domain_id}/remove")
    assert removed.status_code == 303
    state = acme_state(stack)
    assert "sub.acme-corp.example" not in state["domains"]
    for action in ("domain.added", "domain.verified", "domain.removed"):
        assert state["actions"].count(action) == start["actions"].count(action) + 1, action


def test_another_organizations_domain_is_not_found(stack: Stack) -> None:
    async def globex_domain(session: AsyncSession, _: Organization) -> uuid.UUID:
        return (
            await session.execute(
                select(OrganizationDomain.id).where(OrganizationDomain.domain == "globex.example")
            )
        ).scalar_one()

    domain_id = in_acme(stack.settings, globex_domain)
    alice = signed_in(stack, "alice@acme.example")
    for action in ("verify", "remove"):
        response = post(alice, f"/o/acme/settings/organization/domains/{domain_id}/{action}")
        assert response.status_code == 404, action
    assert "globex.example" in {d for d in _all_domains(stack)}
    # And through globex's own path, alice is not a member: 404 too.
    response = post(alice, f"/o/globex/settings/organization/domains/{domain_id}/remove")
    assert response.status_code == 404


def _all_domains(stack: Stack) -> list[str]:
    async def work(session: AsyncSession, _: Organization) -> list[str]:
        return list((await session.execute(select(OrganizationDomain.domain))).scalars())

    return in_acme(stack.settings, work)


@pytest.mark.parametrize(
    ("email", "status"),
    [
        ("alice@acme.example", 303),
        ("adam@acme.example", 303),
        ("bob@acme.example", 403),
        ("vera@acme.example", 403),
    ],
)
def test_each_role_may_or_may_not_add_a_domain(stack: Stack, email: str, status: int) -> None:
    browser = signed_in(stack, email)
    domain = f"r{uuid.uuid4().hex[:8]}.example"
    response = post(browser, "/o/acme/settings/organization/domains", {"domain": domain})
    assert response.status_code == status
    assert (domain in acme_state(stack)["domains"]) == (status == 303)
    assert browser.get(SETTINGS).status_code == (200 if status == 303 else 403)


def post_in(browser: Browser, slug: str, path: str, data: dict[str, str] | None = None) -> Any:
    page = browser.get(f"/o/{slug}/")
    token = CSRF.search(page.text)
    assert token, page.text
    return browser.client.post(
        browser.stack.app_url + path, data={"_csrf_token": token[1], **(data or {})}
    )


def domain_row(page: str, domain: str) -> str:
    found = re.search(rf'<li [^>]*data-domain="{re.escape(domain)}">(.*?)</li>', page, re.S)
    assert found, page
    return found[1]


def test_a_squatters_pending_claim_does_not_block_the_real_owner(
    stack: Stack, dns: tuple[str, TxtZone]
) -> None:
    """Globex's admin claims bigcorp.example first and never verifies it. Acme, which owns it,
    adds and verifies it all the same; Globex's claim then shows as taken, without a Verify
    button and without naming Acme, and verifying it anyway is a clear 409."""
    _, zone = dns
    domain = "bigcorp.example"
    gina = signed_in(stack, "gina@globex.example")
    squatted = post_in(
        gina, "globex", "/o/globex/settings/organization/domains", {"domain": domain}
    )
    assert squatted.status_code == 303, squatted.text

    alice = signed_in(stack, "alice@acme.example")
    added = post(alice, "/o/acme/settings/organization/domains", {"domain": domain})
    assert added.status_code == 303, added.text
    verified, token, domain_id = acme_state(stack)["domains"][domain]
    assert not verified
    zone.set_txt(f"_saas-verification.{domain}", token)
    done = post(alice, f"/o/acme/settings/organization/domains/{domain_id}/verify")
    assert done.status_code == 303, done.text
    assert acme_state(stack)["domains"][domain][0] is True

    page = gina.get("/o/globex/settings/organization/")
    assert page.status_code == 200
    row = domain_row(page.text, domain)
    assert "verified by another organization" in row
    assert "/verify" not in row  # no Verify button that can only fail
    assert "Remove" in row
    assert "acme" not in row.lower()
    home = gina.get("/o/globex/")
    assert f"Verify {domain}" not in home.text  # nor a next action to verify it

    async def globex_claim(session: AsyncSession, _: Organization) -> uuid.UUID:
        return (
            await session.execute(
                select(OrganizationDomain.id)
                .join(Organization, Organization.id == OrganizationDomain.organization_id)
                .where(OrganizationDomain.domain == domain, Organization.slug == "globex")
            )
        ).scalar_one()

    claim_id = in_acme(stack.settings, globex_claim)
    zone.set_txt(f"_saas-verification.{domain}", token, "globex-token-does-not-matter")
    refused = post_in(gina, "globex", f"/o/globex/settings/organization/domains/{claim_id}/verify")
    assert refused.status_code == 409, refused.text[:500]
    assert f"Another organization has already verified {domain}" in refused.text
    assert "acme" not in domain_row(refused.text, domain).lower()

    # A third organization cannot claim it now.
    again = post_in(gina, "globex", "/o/globex/settings/organization/domains", {"domain": domain})
    assert again.status_code == 409
    assert "already claimed" in again.text


def test_pending_domains_are_capped_with_a_clear_message(stack: Stack) -> None:
    add_pending_domains(stack, MAX_PENDING_DOMAINS)
    alice = signed_in(stack, "alice@acme.example")
    before = acme_state(stack)
    refused = post(alice, "/o/acme/settings/organization/domains", {"domain": "more.example"})
    assert refused.status_code == 409
    assert f"already has {MAX_PENDING_DOMAINS} domains waiting to be verified" in refused.text
    assert 'id="domain-error"' in refused.text
    assert acme_state(stack) == before
