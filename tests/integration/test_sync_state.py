"""Sync state people can see (issue 14): the SSO page says whether Auth0 has the connection as
saved (waiting, in step, or failed and why in plain words), and a tenant admin retries their
own organization's failed job, never another's. Real app, dev IdP and outbox worker."""

from __future__ import annotations

import asyncio
import datetime
import html
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from saas.audit.services import Actor
from saas.db.config import create_sqlalchemy_config
from saas.db.models import Membership, Organization, OutboxJob, OutboxStatus, User
from saas.members.services import MembershipService
from saas.sso.services import connection_name
from saas.tenancy.permissions import Role
from tests.integration.test_sso_settings import (
    CSRF,
    metadata_xml,
    olivia_on_initech,
    save,
)
from tests.support.certificates import self_signed_pem
from tests.support.invitations import invite_as_system
from tests.support.stack import Browser, Stack, in_acme, running_stack, stack_settings

PAGE = "/o/initech/settings/sso/"
RETRY = re.compile(r'action="(/o/initech/settings/sso/jobs/[0-9a-f-]+/retry)"')


pytestmark = pytest.mark.stack(outbox_poll_seconds=0.2)


async def _organization(stack: Stack, slug: str) -> Organization:
    config = create_sqlalchemy_config(stack.settings)
    try:
        async with config.get_session() as session:
            return (
                await session.execute(select(Organization).where(Organization.slug == slug))
            ).scalar_one()
    finally:
        await config.get_engine().dispose()


def wait_for_state(browser: Browser, state: str) -> str:
    deadline = time.monotonic() + 20
    while True:
        page = browser.get(PAGE).text
        if f'data-sync="{state}"' in page:
            return page
        assert time.monotonic() < deadline, page
        time.sleep(0.2)


def take_the_name_at_auth0(stack: Stack, name: str) -> str:
    """Someone else's connection with the name the app will ask for: Auth0 keeps names
    unique per tenant, and the app refuses to adopt a connection it did not create."""
    with stack.management() as mgmt:
        created = mgmt.post(
            "/connections",
            json={
                "name": name,
                "strategy": "samlp",
                "options": {"metadataXml": metadata_xml(self_signed_pem("idp.initech.example"))},
                "metadata": {"saas_organization_id": "someone-else"},
            },
        )
        assert created.status_code == 201, created.text
        return str(created.json()["id"])


def test_a_refused_connection_is_shown_failed_in_plain_words_and_retried(stack: Stack) -> None:
    initech = asyncio.run(_organization(stack, "initech"))
    squatter = take_the_name_at_auth0(stack, connection_name(initech, "samlp"))
    browser = olivia_on_initech(stack)
    saved = save(
        browser,
        {
            "strategy": "samlp",
            "display_name": "Initech SAML",
            "metadata_xml": metadata_xml(self_signed_pem("idp.initech.example")),
        },
    )
    assert saved.status_code == 303, saved.text

    page = wait_for_state(browser, "failed")
    text = html.unescape(page)
    assert "Auth0 did not accept the last change." in text
    assert "Auth0 already has a connection with this name" in text
    assert "belongs to someone else" not in text  # the raw error is for the operator
    assert "active at Auth0" not in text

    # The cause is fixed at Auth0 (the operator hands the connection to initech; the dev
    # IdP, like Auth0's API, has no rename); the admin retries from the page.
    with stack.management() as mgmt:
        handed = mgmt.patch(
            f"/connections/{squatter}",
            json={"metadata": {"saas_organization_id": str(initech.id)}},
        )
        assert handed.status_code == 200, handed.text
    retry = RETRY.search(page)
    assert retry, page
    token = CSRF.search(page)
    assert token
    answer = browser.client.post(
        stack.app_url + retry[1], data={"_csrf_token": token[1]}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/o/initech/settings/sso"
    page = wait_for_state(browser, "in_step")
    assert "Auth0 did not accept" not in page


def test_a_saved_connection_waits_then_is_in_step(stack: Stack) -> None:
    browser = olivia_on_initech(stack)
    saved = save(
        browser,
        {
            "strategy": "samlp",
            "display_name": "Initech",
            "metadata_xml": metadata_xml(self_signed_pem("idp.initech.example")),
        },
    )
    assert saved.status_code == 303, saved.text
    first = browser.get(PAGE).text
    # Right after the save the worker (polling every 0.2 s) may or may not have run yet.
    assert 'data-sync="pending"' in first or 'data-sync="in_step"' in first, first
    wait_for_state(browser, "in_step")


async def _failed_job_of(stack: Stack, organization: Organization) -> OutboxJob:
    config = create_sqlalchemy_config(stack.settings)
    try:
        async with config.get_session() as session:
            job = OutboxJob(
                kind="organization.sync",
                payload={"organization_id": str(organization.id)},
                status=OutboxStatus.FAILED.value,
                attempts=8,
                last_error="refused",
                organization_id=organization.id,
                target_type="organization",
                target_id=organization.id,
            )
            session.add(job)
            await session.commit()
            await session.refresh(job)
            return job
    finally:
        await config.get_engine().dispose()


async def _status(stack: Stack, job: OutboxJob) -> str:
    config = create_sqlalchemy_config(stack.settings)
    try:
        async with config.get_session() as session:
            found = await session.get(OutboxJob, job.id)
            assert found is not None
            return found.status
    finally:
        await config.get_engine().dispose()


def test_a_tenant_admin_cannot_retry_another_organizations_job(stack: Stack) -> None:
    globex = asyncio.run(_organization(stack, "globex"))
    job = asyncio.run(_failed_job_of(stack, globex))
    browser = olivia_on_initech(stack)  # owner of initech, not a member of globex
    token = CSRF.search(browser.get(PAGE).text)
    assert token
    answer: httpx.Response = browser.client.post(
        f"{stack.app_url}/o/initech/settings/sso/jobs/{job.id}/retry",
        data={"_csrf_token": token[1]},
        follow_redirects=False,
    )
    assert answer.status_code == 422, answer.text
    assert asyncio.run(_status(stack, job)) == OutboxStatus.FAILED.value


def test_every_demo_organization_saves_its_sso_settings_into_step(stack: Stack) -> None:
    """The seeded connections are the organizations' own at the dev IdP, as at Auth0 once the
    app created them: saving them updates them instead of failing."""
    for email, slug, form in (
        (
            "alice@acme.example",
            "acme",
            {
                "strategy": "samlp",
                "display_name": "Acme Corp SAML",
                "metadata_xml": metadata_xml(self_signed_pem("idp.initech.example")),
                "assign_membership_on_login": "on",
            },
        ),
        (
            "grace@globex.example",
            "globex",
            {
                "strategy": "oidc",
                "display_name": "Globex OIDC",
                "discovery_url": stack.idp_url + "/.well-known/openid-configuration",
                "client_id": "globex-client",
            },
        ),
    ):
        browser = stack.browser()
        browser.login(email)
        assert browser.follow(browser.get(f"/o/{slug}/login?silent=true")).status_code == 200
        page_url = f"/o/{slug}/settings/sso/"
        token = CSRF.search(browser.get(page_url).text)
        assert token, slug
        saved = browser.client.post(
            stack.app_url + page_url, data={"_csrf_token": token[1], **form}
        )
        assert saved.status_code == 303, (slug, saved.text)
        deadline = time.monotonic() + 20
        while 'data-sync="in_step"' not in (page := browser.get(page_url).text):
            assert 'data-sync="failed"' not in page, html.unescape(page)
            assert time.monotonic() < deadline, page
            time.sleep(0.2)
        browser.close()


def test_the_operator_sees_which_organization_failed_and_retries(stack: Stack) -> None:
    globex = asyncio.run(_organization(stack, "globex"))
    job = asyncio.run(_failed_job_of(stack, globex))
    operator = stack.browser()
    operator.login("olivia@ops.example")
    listing = operator.get("/admin/outbox")
    assert listing.status_code == 200
    row = listing.text.split(f"/admin/outbox/{job.id}/retry")[0].rsplit("<tr>", 1)[1]
    assert "Globex Corporation" in html.unescape(row), row

    page = operator.get("/admin/organizations/globex")
    assert 'data-sync="failed"' in page.text
    assert f"/admin/outbox/{job.id}/retry" in page.text
    token = CSRF.search(page.text)
    assert token
    retried = operator.client.post(
        f"{stack.app_url}/admin/outbox/{job.id}/retry",
        data={"_csrf_token": token[1]},
        follow_redirects=False,
    )
    assert retried.status_code == 303, retried.text
    # Queued again: the worker runs it against the dev IdP, and the organization is in step.
    deadline = time.monotonic() + 20
    while 'data-sync="in_step"' not in (shown := operator.get("/admin/organizations/globex").text):
        assert time.monotonic() < deadline, shown
        time.sleep(0.2)
    operator.close()


def test_the_invitations_panel_shows_pending_then_failed_in_plain_words(
    database_url: str, tmp_path: Path
) -> None:
    """No worker runs here, so the invitation's job stays due until this test records it
    failed, as the worker does after a refusal it cannot retry."""
    email = "failed-invite@acme.example"

    async def invite(session: Any, acme: Organization) -> None:
        await invite_as_system(session, acme.id, email, ttl=datetime.timedelta(days=1))

    async def refused(session: Any, acme: Organization) -> None:
        job = (
            await session.execute(
                select(OutboxJob).where(
                    OutboxJob.organization_id == acme.id, OutboxJob.target_type == "invitation"
                )
            )
        ).scalar_one()
        job.status = OutboxStatus.FAILED.value
        job.attempts = 1
        job.last_error = "POST /api/v2/organizations/x/invitations: 403 insufficient_scope"

    def item(browser: Browser) -> str:
        page = browser.get("/o/acme/members/").text
        return html.unescape(page.split(f'data-email="{email}"')[1].split("</li>")[0])

    settings = stack_settings(database_url, tmp_path, outbox_worker_enabled=False)
    with running_stack(settings) as stack:
        in_acme(stack.settings, invite)
        browser = stack.browser()
        browser.login("alice@acme.example")
        assert browser.follow(browser.get("/o/acme/login?silent=true")).status_code == 200
        assert 'data-sync="pending"' in item(browser)
        in_acme(stack.settings, refused)
        shown = item(browser)
        assert 'data-sync="failed"' in shown, shown
        assert "The app is not allowed to make this change at Auth0" in shown
        assert "insufficient_scope" not in shown
        browser.close()


def test_a_changed_role_shows_pending_then_failed_in_plain_words(
    database_url: str, tmp_path: Path
) -> None:
    """The members page, like the invitations panel: a role change waits for Auth0 until
    this test records its job failed (no worker runs), then the row says why in plain
    words. Rows whose role is in step, or never synced, say nothing."""
    email = "bob@acme.example"

    async def settled(session: Any, acme: Organization) -> None:
        """The seeded members' jobs done, as the worker would have them: their roles are in
        step with Auth0."""
        await session.execute(
            update(OutboxJob)
            .where(OutboxJob.organization_id == acme.id, OutboxJob.target_type == "member")
            .values(status=OutboxStatus.DONE.value)
        )

    async def change(session: Any, acme: Organization) -> None:
        bob = (
            await session.execute(
                select(Membership)
                .join(User, User.id == Membership.user_id)
                .where(Membership.organization_id == acme.id, User.email == email)
            )
        ).scalar_one()
        await MembershipService(session=session).change_role(
            organization_id=acme.id,
            membership_id=bob.id,
            role=Role.ADMIN if bob.role != Role.ADMIN.value else Role.MEMBER,
            actor=Actor.system(),
            authority=None,
        )

    async def refused(session: Any, acme: Organization) -> None:
        job = (
            await session.execute(
                select(OutboxJob).where(
                    OutboxJob.organization_id == acme.id,
                    OutboxJob.target_type == "member",
                    OutboxJob.status == OutboxStatus.PENDING.value,
                )
            )
        ).scalar_one()
        job.status = OutboxStatus.FAILED.value
        job.attempts = 1
        job.last_error = "POST /api/v2/organizations/x/members/y/roles: 403 insufficient_scope"

    def row(browser: Browser, who: str) -> str:
        page = browser.get("/o/acme/members/").text
        return html.unescape(page.split(f'data-email="{who}"')[1].split("</tr>")[0])

    settings = stack_settings(database_url, tmp_path, outbox_worker_enabled=False)
    with running_stack(settings) as stack:
        browser = stack.browser()
        browser.login("alice@acme.example")
        assert browser.follow(browser.get("/o/acme/login?silent=true")).status_code == 200
        in_acme(stack.settings, settled)
        # In step: the row says nothing about Auth0.
        assert "data-sync" not in row(browser, email)
        in_acme(stack.settings, change)
        assert 'data-sync="pending"' in row(browser, email)
        in_acme(stack.settings, refused)
        shown = row(browser, email)
        assert 'data-sync="failed"' in shown, shown
        assert "The app is not allowed to make this change at Auth0" in shown
        assert "insufficient_scope" not in shown
        # Another member's role, in step, keeps a quiet row.
        assert "data-sync" not in row(browser, "adam@acme.example")
        browser.close()
