"""The operator console over real HTTP: onboarding, domain verification, suspension, retries."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
from sqlalchemy import func, select

from saas.config import Settings
from saas.db.config import create_sqlalchemy_config
from saas.db.models import (
    EnterpriseConnection,
    Invitation,
    Organization,
    OrganizationDomain,
    OutboxJob,
    OutboxStatus,
)
from tests.support.dns_server import TxtZone
from tests.support.stack import Browser, Stack

CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')
FLASH = 'data-testid="flash"'


@pytest.fixture
def stack_overrides(dns: tuple[str, TxtZone]) -> dict[str, object]:
    # The run's DNS server (tests/conftest.py), the same for every test: one stack serves all.
    return {"dns_nameserver": dns[0], "outbox_poll_seconds": 0.2}


def operator(stack: Stack) -> Browser:
    browser = stack.browser()
    browser.login("olivia@ops.example")
    return browser


def post(browser: Browser, page_path: str, action: str, data: dict[str, str]) -> httpx.Response:
    page = browser.get(page_path)
    token = CSRF.search(page.text)
    assert token, page.text
    return browser.client.post(
        browser.stack.app_url + action, data={"_csrf_token": token[1], **data}
    )


async def scalar(settings: Settings, statement: object) -> object:
    config = create_sqlalchemy_config(settings)
    try:
        async with config.get_session() as session:
            return await session.scalar(statement)  # type: ignore[call-overload]
    finally:
        await config.get_engine().dispose()


def test_operator_onboards_an_organization(stack: Stack, dns: tuple[str, TxtZone]) -> None:
    browser = operator(stack)
    home = browser.get("/admin/")
    assert home.status_code == 200
    assert "Acme Corp" in home.text
    assert "Initech" in home.text
    created = post(
        browser,
        "/admin/organizations/new",
        "/admin/organizations",
        {
            "slug": "initrode",
            "display_name": "Initrode",
            "default_role": "member",
            "jit_provisioning": "on",
            "domains": "initrode.example",
            "sso_strategy": "oidc",
            "discovery_url": stack.idp_url + "/.well-known/openid-configuration",
            "client_id": "initrode-client",
            "client_secret": "initrode-secret",
            "owner_email": "peter@initrode.example",
        },
    )
    assert created.status_code == 303, created.text
    assert created.headers["location"] == "/admin/organizations/initrode"
    detail = browser.get("/admin/organizations/initrode")
    # The page the redirect lands on says what was done, once.
    assert detail.text.count(FLASH) == 1
    assert "Initrode was created." in detail.text
    assert "initrode.example" in detail.text
    assert "unverified" in detail.text
    token = re.search(r"with the value <code>([^<]+)</code>", detail.text)
    assert token

    # Verification fails until the TXT record is there, then succeeds.
    failed = post(
        browser,
        "/admin/organizations/initrode",
        "/admin/organizations/initrode/domains/verify",
        {"domain": "initrode.example"},
    )
    assert failed.status_code == 422
    assert "No TXT record" in failed.text
    dns[1].set_txt("_saas-verification.initrode.example", token[1])
    verified = post(
        browser,
        "/admin/organizations/initrode",
        "/admin/organizations/initrode/domains/verify",
        {"domain": "initrode.example"},
    )
    assert verified.status_code == 303
    page = browser.get(verified.headers["location"])
    assert "verified" in page.text
    assert page.text.count(FLASH) == 1
    assert "initrode.example is verified." in page.text
    assert FLASH not in browser.get("/admin/organizations/initrode").text

    # The outbox creates the organization at Auth0 and sends the owner's invitation.
    def synced() -> bool:
        org_id = asyncio.run(
            scalar(
                stack.settings,
                select(Organization.auth0_org_id).where(Organization.slug == "initrode"),
            )
        )
        inv = asyncio.run(scalar(stack.settings, select(Invitation.auth0_invitation_id)))
        connection = asyncio.run(
            scalar(
                stack.settings,
                select(EnterpriseConnection.auth0_connection_id).where(
                    EnterpriseConnection.auth0_connection_name.startswith("initrode-oidc-")
                ),
            )
        )
        return bool(org_id) and bool(inv) and bool(connection)

    deadline = time.monotonic() + 15
    while not synced():
        assert time.monotonic() < deadline, "the outbox did not sync the new organization"
        time.sleep(0.2)
    mail = httpx.get(stack.idp_url + "/__dev/mailbox.json").json()["messages"]
    assert any(m["to"] == "peter@initrode.example" for m in mail)


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"slug": "acme", "display_name": "Another Acme"}, "is taken"),
        ({"slug": "Bad Slug", "display_name": "X"}, "lowercase letters"),
        (
            {"slug": "okslug", "display_name": "X", "domains": "gmail.com"},
            "public mailbox provider",
        ),
        ({"slug": "okslug", "display_name": "X", "domains": "acme.example"}, "already claimed"),
        ({"slug": "okslug", "display_name": "X", "owner_email": "not-an-email"}, "not an email"),
        (
            {
                "slug": "okslug",
                "display_name": "X",
                "sso_strategy": "oidc",
                "client_id": "c",
                "discovery_url": "https://localhost.invalid/.well-known/openid-configuration",
            },
            "does not resolve",
        ),
    ],
)
def test_bad_onboarding_input_writes_nothing(
    stack: Stack, form: dict[str, str], message: str
) -> None:
    browser = operator(stack)
    orgs_before = asyncio.run(
        scalar(stack.settings, select(func.count()).select_from(Organization))
    )
    jobs_before = asyncio.run(scalar(stack.settings, select(func.count()).select_from(OutboxJob)))
    response = post(
        browser,
        "/admin/organizations/new",
        "/admin/organizations",
        form,
    )
    assert response.status_code in (409, 422), response.status_code
    assert message in response.text
    assert (
        asyncio.run(scalar(stack.settings, select(func.count()).select_from(Organization)))
        == orgs_before
    )
    assert (
        asyncio.run(scalar(stack.settings, select(func.count()).select_from(OutboxJob)))
        == jobs_before
    )
    assert (
        asyncio.run(scalar(stack.settings, select(func.count()).select_from(OrganizationDomain)))
        == 2
    )


def test_suspension_stops_sign_in_and_api(stack: Stack) -> None:
    browser = operator(stack)
    suspended = post(
        browser,
        "/admin/organizations/acme",
        "/admin/organizations/acme/status",
        {"status": "suspended"},
    )
    assert suspended.status_code == 303
    assert "Acme Corp is suspended now." in browser.get(suspended.headers["location"]).text
    alice = stack.browser()
    refused = alice.start_login("alice@acme.example")
    assert refused.status_code == 403
    assert "not available" in refused.text
    reactivated = post(
        browser,
        "/admin/organizations/acme",
        "/admin/organizations/acme/status",
        {"status": "active"},
    )
    assert reactivated.status_code == 303
    assert stack.browser().login("alice@acme.example").status_code == 200


def test_non_operators_do_not_see_the_console(stack: Stack) -> None:
    alice = stack.browser()
    alice.login("alice@acme.example")
    assert alice.get("/admin/").status_code == 404
    assert stack.browser().get("/admin/").status_code == 303


def test_failed_jobs_are_listed_and_retried(stack: Stack) -> None:
    async def fail_one() -> None:
        config = create_sqlalchemy_config(stack.settings)
        try:
            async with config.get_session() as session:
                session.add(
                    OutboxJob(
                        kind="no.such.kind",
                        payload={},
                        status=OutboxStatus.FAILED.value,
                        attempts=8,
                        last_error="boom: 400 bad request",
                    )
                )
                await session.commit()
        finally:
            await config.get_engine().dispose()

    asyncio.run(fail_one())
    browser = operator(stack)
    assert "Review failed jobs" in browser.get("/admin/").text
    page = browser.get("/admin/outbox")
    assert "boom: 400 bad request" in page.text
    job_id = re.search(r"/admin/outbox/([0-9a-f-]{36})/retry", page.text)
    assert job_id
    retried = post(browser, "/admin/outbox", f"/admin/outbox/{job_id[1]}/retry", {})
    assert retried.status_code == 303
    assert retried.headers["location"] == "/admin/outbox"
    page = browser.get(retried.headers["location"])
    assert page.text.count(FLASH) == 1
    assert "The no.such.kind job is queued again." in page.text
    status = asyncio.run(
        scalar(stack.settings, select(OutboxJob.status).where(OutboxJob.kind == "no.such.kind"))
    )
    assert status in (OutboxStatus.PENDING.value, OutboxStatus.FAILED.value)
    attempts = asyncio.run(
        scalar(stack.settings, select(OutboxJob.attempts).where(OutboxJob.kind == "no.such.kind"))
    )
    assert attempts in (0, 1)  # reset, and possibly tried once more by the worker since


def admin_domain_row(page: str, domain: str) -> str:
    found = re.search(rf'<li data-domain="{re.escape(domain)}">(.*?)</li>', page, re.S)
    assert found, page
    return found[1]


def test_a_claim_another_organization_verified_shows_as_taken_without_verify(
    stack: Stack, dns: tuple[str, TxtZone]
) -> None:
    """Globex claims bigcorp.example first; Acme, which owns it, verifies it. On Globex's
    console page the claim then reads "verified by another organization", as on the tenant's
    own settings page, with no Verify button that can only fail; verifying it anyway is a
    clear refusal on that page, and nothing changes."""
    domain = "bigcorp.example"
    browser = operator(stack)
    for slug in ("globex", "acme"):
        added = post(
            browser,
            f"/admin/organizations/{slug}",
            f"/admin/organizations/{slug}/domains",
            {"domain": domain},
        )
        assert added.status_code == 303, added.text
    acme_row = admin_domain_row(browser.get("/admin/organizations/acme").text, domain)
    token = re.search(r"with the value <code>([^<]+)</code>", acme_row)
    assert token, acme_row
    dns[1].set_txt(f"_saas-verification.{domain}", token[1])
    verified = post(
        browser,
        "/admin/organizations/acme",
        "/admin/organizations/acme/domains/verify",
        {"domain": domain},
    )
    assert verified.status_code == 303, verified.text

    row = admin_domain_row(browser.get("/admin/organizations/globex").text, domain)
    assert "verified by another organization" in row
    assert f"Verify {domain}" not in row
    assert "/domains/verify" not in row
    assert "TXT record" not in row
    # Acme's own row is plainly verified.
    acme_row = admin_domain_row(browser.get("/admin/organizations/acme").text, domain)
    assert 'data-testid="domain-status">verified<' in acme_row

    refused = post(
        browser,
        "/admin/organizations/globex",
        "/admin/organizations/globex/domains/verify",
        {"domain": domain},
    )
    assert refused.status_code == 409, refused.text
    assert "verified by another organization" in admin_domain_row(refused.text, domain)
    assert (
        asyncio.run(
            scalar(
                stack.settings,
                select(func.count())
                .select_from(OrganizationDomain)
                .where(
                    OrganizationDomain.domain == domain, OrganizationDomain.verified_at.is_not(None)
                ),
            )
        )
        == 1
    )
