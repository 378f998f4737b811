"""The Management API half of issue 14: production breakers that passed every test because the
dev IdP was laxer than Auth0. Each test drives the app's real code path (services, outbox jobs,
`ManagementClient`) against the dev IdP now answering as Auth0 does; the Auth0 behaviour each
relies on is cited where the app or the dev IdP implements it (saas/auth0/management.py,
saas/auth0/sync.py, saas/devidp/management/).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import httpx
import jwt
import pytest
from sqlalchemy import insert as sa_insert
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import create_async_engine

from saas.audit.services import Actor
from saas.auth0.jobs import sync_member_later
from saas.auth0.management import ManagementClient, ManagementError
from saas.auth0.outbox import OutboxWorker
from saas.auth0.sync import HANDLERS
from saas.config import Settings, load_settings
from saas.db.config import create_sqlalchemy_config
from saas.db.models import (
    EnterpriseConnection,
    Invitation,
    Membership,
    Organization,
    OutboxJob,
    OutboxStatus,
    User,
)
from saas.demo.data import ACME_SAML
from saas.devidp import models as idp_models
from saas.invitations.services import InvitationService
from saas.sso.services import SsoService
from saas.sso.validation import ValidatedConnection, validate_saml_endpoint
from saas.tenancy.caller import Caller
from tests.support.certificates import self_signed_pem
from tests.support.stack import Stack, add_fault

ACME_ORG = "org_AcmeDemo00000001"
SETTLE_SECONDS = 30.0
INITECH_ORG = "org_InitechDemo00003"


# The tests drive the outbox themselves, so that they know when it has run.
pytestmark = pytest.mark.stack(outbox_worker_enabled=False, auth0_request_timeout_seconds=1.0)


@pytest.fixture
async def db(stack: Stack) -> AsyncIterator[Any]:
    config = create_sqlalchemy_config(stack.settings)
    try:
        yield config
    finally:
        await config.get_engine().dispose()


def worker(settings: Settings, db: Any, client: ManagementClient | None = None) -> OutboxWorker:
    return OutboxWorker(
        db.create_session_maker(),
        client or ManagementClient(settings),
        HANDLERS,
        max_attempts=10,
    )


async def settle(running: OutboxWorker, db: Any) -> dict[str, int]:
    """Run jobs (waiting out their backoff) until none is pending; the job count by status."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        await running.drain()
        async with db.get_session() as session:
            statuses = [s for (s,) in (await session.execute(select(OutboxJob.status))).all()]
        if OutboxStatus.PENDING.value not in statuses:
            return {status: statuses.count(status) for status in set(statuses)}
        assert time.monotonic() < deadline, f"jobs still pending: {statuses}"
        await asyncio.sleep(0.2)


async def organization(db: Any, slug: str) -> Organization:
    async with db.get_session() as session:
        return (
            await session.execute(select(Organization).where(Organization.slug == slug))
        ).scalar_one()


async def clear_faults(stack: Stack) -> None:
    async with httpx.AsyncClient() as client:
        await client.delete(stack.idp_url + "/__dev/faults")


def failed_errors(db_statuses: dict[str, int]) -> int:
    return db_statuses.get(OutboxStatus.FAILED.value, 0)


async def invitation_jobs(db: Any, invitation_id: UUID) -> list[tuple[str, int]]:
    """(status, runs) of each sync job of one invitation, oldest first."""
    async with db.get_session() as session:
        rows = await session.execute(
            select(OutboxJob.status, OutboxJob.attempts)
            .where(OutboxJob.payload["invitation_id"].as_string() == str(invitation_id))
            .order_by(OutboxJob.created_at)
        )
        return [(status, attempts) for status, attempts in rows.all()]


# ---- 1. enabled-connection settings --------------------------------------------------------


async def test_a_changed_membership_on_authentication_setting_reaches_auth0(
    stack: Stack, db: Any
) -> None:
    """Saving the SSO settings with "Anyone who signs in through this connection becomes a
    member" switched on, then off, changes the enabled connection at Auth0 each time (a
    re-POST would get 409 and change nothing)."""
    initech = await organization(db, "initech")
    oidc = ValidatedConnection(
        strategy="oidc",
        options={"discovery_url": stack.idp_url + "/.well-known/openid-configuration"},
    )
    running = worker(stack.settings, db)
    seen = []
    try:
        for assign in (False, True, False):
            async with db.get_session() as session:
                connection = await SsoService(session, Caller.system(initech), stack.settings).save(
                    oidc,
                    display_name="Initech SSO",
                    assign_membership_on_login=assign,
                )
                await session.commit()
            assert failed_errors(await settle(running, db)) == 0
            async with db.get_session() as session:
                auth0_id = await session.scalar(
                    select(EnterpriseConnection.auth0_connection_id).where(
                        EnterpriseConnection.id == connection.id
                    )
                )
            assert auth0_id is not None
            with stack.management() as mgmt:
                enabled = mgmt.get(f"/organizations/{INITECH_ORG}/enabled_connections/{auth0_id}")
            assert enabled.status_code == 200, enabled.text
            seen.append(enabled.json()["assign_membership_on_login"])
    finally:
        await running.client.aclose()
    print(f"assign_membership_on_login at Auth0 after each save: {seen}")
    assert seen == [False, True, False]


async def test_seeded_acme_lets_a_new_employee_in_just_in_time(stack: Stack, db: Any) -> None:
    """The seed leaves the dev IdP's Acme connection as Auth0 starts one (membership on
    authentication off) while the app's Acme provisions just in time: its sync must switch it
    on, or a new @acme.example person is refused at Auth0 ("not part of the organization")."""
    with stack.management() as mgmt:
        before = mgmt.get(f"/organizations/{ACME_ORG}/enabled_connections/{ACME_SAML.auth0_id}")
    assert before.json()["assign_membership_on_login"] is False
    running = worker(stack.settings, db)
    try:
        assert failed_errors(await settle(running, db)) == 0
    finally:
        await running.client.aclose()
    with stack.management() as mgmt:
        after = mgmt.get(f"/organizations/{ACME_ORG}/enabled_connections/{ACME_SAML.auth0_id}")
    assert after.json()["assign_membership_on_login"] is True

    maria = stack.browser()
    try:
        landed = maria.login("maria.garcia@acme.example")
    finally:
        maria.close()
    assert landed.status_code == 200, landed.text[:500]
    assert landed.url.path.startswith("/o/acme"), landed.url
    async with db.get_session() as session:
        role = await session.scalar(
            select(Membership.role)
            .join(User, User.id == Membership.user_id)
            .join(Organization, Organization.id == Membership.organization_id)
            .where(User.email == "maria.garcia@acme.example", Organization.slug == "acme")
        )
    assert role == "member", "a just-in-time member gets the organization's default role"


# ---- 2. invitations ------------------------------------------------------------------------


async def fill_auth0_invitations(settings: Settings, org_id: str, count: int) -> None:
    """Invitations made at Auth0 an hour ago, by someone else (a busy organization)."""
    engine = create_async_engine(settings.devidp_database_url)
    earlier = time.time() - 3600
    try:
        async with engine.begin() as connection:
            await connection.execute(
                sa_insert(idp_models.Invitation),
                [
                    {
                        "id": f"uinv_old{n:012d}",
                        "organization_id": org_id,
                        "ticket_id": secrets.token_urlsafe(24),
                        "inviter_name": "Someone else",
                        "invitee_email": f"old-{n}@acme.example",
                        "client_id": settings.auth0_client_id,
                        "connection_id": None,
                        "roles": [],
                        "app_metadata": {},
                        "user_metadata": {},
                        "invitation_url": "https://example.invalid/",
                        "created_at": earlier + n / 1000,
                        "expires_at": earlier + 7 * 86400,
                    }
                    for n in range(count)
                ],
            )
    finally:
        await engine.dispose()


async def invite(db: Any, organization_id: UUID, email: str) -> Invitation:
    async with db.get_session() as session:
        invitation, _ = await InvitationService(session=session).invite(
            organization_id=organization_id,
            email=email,
            role="member",
            actor=Actor.system(),
            authority=None,
            ttl=datetime.timedelta(days=7),
        )
        await session.commit()
    return invitation


async def at_auth0(client: ManagementClient, app_invitation_id: UUID) -> list[dict[str, Any]]:
    # Newest first: what the tests just created is on the first page, however many exist.
    listed = await client.call(
        "GET", f"/organizations/{ACME_ORG}/invitations", params={"per_page": 100}
    )
    return [
        i
        for i in listed
        if (i.get("app_metadata") or {}).get("saas_invitation_id") == str(app_invitation_id)
    ]


# Listing 1,100 invitations at the dev IdP took over the module's 1 s client timeout on a loaded
# 2-core machine: this test's client waits 3 s, and its hang fault outlasts that.
@pytest.mark.stack(auth0_request_timeout_seconds=3.0)
async def test_invitations_work_in_an_organization_with_over_1000_at_auth0(
    stack: Stack, db: Any
) -> None:
    """Paging through every invitation before each create failed at Auth0's 1,000-record
    window (400, not retried). A create needs no search at all; a retry after a run that may
    have created it looks only among the newest; a revoke of one never recorded finds it."""
    await fill_auth0_invitations(stack.settings, ACME_ORG, 1100)
    acme = await organization(db, "acme")
    async with db.get_session() as session:
        await session.execute(update(OutboxJob).values(status=OutboxStatus.DONE.value))
        await session.commit()
    running = worker(stack.settings, db)
    try:
        # A create with any listing of invitations failing: it must not list.
        await add_fault(
            stack,
            method="GET",
            path="/api/v2/organizations/*/invitations",
            response="500",
            fraction=1.0,
        )
        plain = await invite(db, acme.id, "plain@acme.example")
        await settle(running, db)
        await clear_faults(stack)
        async with db.get_session() as session:
            row = await session.get(Invitation, plain.id)
        assert await invitation_jobs(db, plain.id) == [(OutboxStatus.DONE.value, 1)]
        assert row is not None
        assert row.auth0_invitation_id is not None, "Auth0's answer is kept on the row"
        assert [i["id"] for i in await at_auth0(running.client, plain.id)] == [
            row.auth0_invitation_id
        ]

        # The create reaches Auth0 but its answer does not reach us (the call times out):
        # the retry finds it among the newest instead of inviting twice.
        await add_fault(
            stack,
            method="POST",
            path="/api/v2/organizations/*/invitations",
            response="hang",
            count=1,
            hang_seconds=3.5,
        )
        slow = await invite(db, acme.id, "slow@acme.example")
        await settle(running, db)
        async with db.get_session() as session:
            row = await session.get(Invitation, slow.id)
        jobs = await invitation_jobs(db, slow.id)
        created = await at_auth0(running.client, slow.id)
        print(f"invitation after a timed-out create: {len(created)} at Auth0, jobs {jobs}")
        assert jobs == [(OutboxStatus.DONE.value, 2)]
        assert row is not None
        assert [i["id"] for i in created] == [row.auth0_invitation_id], "invited twice"

        # Created at Auth0 by a run that stopped before recording, then revoked.
        lost = await invite(db, acme.id, "lost@acme.example")
        async with db.get_session() as session:
            state = await HANDLERS["invitation.sync"].read(session, {"invitation_id": str(lost.id)})
        await HANDLERS["invitation.sync"].push(running.client, state)
        async with db.get_session() as session:
            await session.execute(update(OutboxJob).values(status=OutboxStatus.DONE.value))
            await InvitationService(session=session).revoke(
                organization_id=acme.id, invitation_id=lost.id, actor=Actor.system()
            )
            await session.commit()
        assert len(await at_auth0(running.client, lost.id)) == 1
        assert failed_errors(await settle(running, db)) == 0
        assert await at_auth0(running.client, lost.id) == [], "still open at Auth0"
    finally:
        await running.client.aclose()


# ---- 3. a revoked machine-to-machine token --------------------------------------------


async def test_a_refused_m2m_token_is_replaced_once(stack: Stack, db: Any) -> None:
    client = ManagementClient(stack.settings)
    try:
        await client.call("GET", "/roles")
        first, first_fetched = client._token, client._token_expires_at
        async with httpx.AsyncClient() as http:
            revoked = await http.post(stack.idp_url + "/__dev/faults/revoke-m2m-tokens", json={})
            assert revoked.json()["revoked"] >= 1
            refused = await http.get(
                stack.idp_url + "/api/v2/roles", headers={"Authorization": f"Bearer {first}"}
            )
        assert refused.status_code == 401, "the dev IdP must refuse a revoked token"

        # A job after the revocation succeeds on its first run, with a new token.
        async with db.get_session() as session:
            await session.execute(update(OutboxJob).values(status=OutboxStatus.DONE.value))
            acme = await organization(db, "acme")
            alice = (
                await session.execute(select(User).where(User.email == "alice@acme.example"))
            ).scalar_one()
            sync_member_later(session, acme.id, alice.id)
            await session.commit()
        running = worker(stack.settings, db, client)
        assert failed_errors(await settle(running, db)) == 0
        async with db.get_session() as session:
            job = (
                await session.execute(
                    select(OutboxJob)
                    .where(OutboxJob.kind == "member.sync")
                    .order_by(OutboxJob.created_at.desc())
                    .limit(1)
                )
            ).scalar_one()
        assert (job.status, job.attempts) == (OutboxStatus.DONE.value, 1), (
            "the first run must not fail on the revoked token"
        )
        # A new one was fetched (within the same second it may sign to the same string).
        assert client._token is not None
        assert client._token_expires_at > first_fetched
    finally:
        await client.aclose()


# ---- 4. a custom login domain --------------------------------------------------------------


def on_custom_domain(stack: Stack, **overrides: object) -> Settings:
    """The tenant's login on a custom domain (here the dev IdP's other loopback name) and its
    canonical domain, where Auth0 serves the Management API, the dev IdP's own."""
    port = stack.idp_url.rsplit(":", 1)[1]
    values: dict[str, object] = {
        "app_env": "test",
        "auth0_domain": f"http://localhost:{port}",
        "auth0_management_domain": stack.idp_url,
        "auth0_request_timeout_seconds": 5.0,
    }
    values.update(overrides)
    return load_settings(**values)


async def test_a_custom_login_domain_keeps_the_management_api_on_the_canonical_one(
    stack: Stack,
) -> None:
    settings = on_custom_domain(stack)
    assert settings.auth0_domain is not None
    assert settings.auth0_issuer == settings.auth0_domain + "/"
    assert settings.auth0_management_audience == stack.idp_url + "/api/v2/"
    client = ManagementClient(settings)
    try:
        found = await client.organization_by_name("acme")
        token = client._token
    finally:
        await client.aclose()
    assert found is not None
    assert found["id"] == ACME_ORG
    assert token is not None
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["aud"] == stack.idp_url + "/api/v2/"

    # With the Management API taken to live on the login domain, as before: no such API.
    only_custom = ManagementClient(on_custom_domain(stack, auth0_management_domain=None))
    try:
        with pytest.raises(ManagementError) as refused:
            await only_custom.organization_by_name("acme")
    finally:
        await only_custom.aclose()
    assert refused.value.status == 403
    assert not refused.value.transient


# ---- 5. rate limits ----------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", [None, 1])
async def test_a_429_waits_until_auth0s_window_resets(
    stack: Stack, db: Any, retry_after: int | None
) -> None:
    """Auth0 documents X-RateLimit-Reset (UNIX seconds) on a 429, not Retry-After: the job
    waits for the reset, even where a Retry-After says something else."""
    fault: dict[str, Any] = {
        "method": "GET",
        "path": "/api/v2/roles",
        "response": "429",
        "count": 1,
        "reset_after": 4,
    }
    if retry_after is not None:
        fault["retry_after"] = retry_after
    await add_fault(stack, **fault)
    client = ManagementClient(stack.settings)
    try:
        with pytest.raises(ManagementError) as limited:
            await client.role_id("member")
    finally:
        await client.aclose()
    print(f"429 with Retry-After {retry_after}: waits {limited.value.retry_after:.2f} s")
    assert limited.value.status == 429
    assert limited.value.transient
    assert 2.5 <= (limited.value.retry_after or 0) <= 4.5

    # The same through the outbox: the job's next run is after the reset.
    await add_fault(stack, **fault)
    async with db.get_session() as session:
        await session.execute(update(OutboxJob).values(status=OutboxStatus.DONE.value))
        acme = await organization(db, "acme")
        bob = (
            await session.execute(select(User).where(User.email == "bob@acme.example"))
        ).scalar_one()
        sync_member_later(session, acme.id, bob.id)
        await session.commit()
    running = worker(stack.settings, db)
    try:
        claimed_at = datetime.datetime.now(datetime.UTC)
        assert await running.run_one() is True
    finally:
        await running.client.aclose()
    async with db.get_session() as session:
        job = (
            await session.execute(
                select(OutboxJob).where(OutboxJob.status == OutboxStatus.PENDING.value)
            )
        ).scalar_one()
    assert job.kind == "member.sync"
    waits = (job.next_attempt_at - claimed_at).total_seconds()
    assert waits >= 2.5, f"retried after {waits:.2f} s, before Auth0's window reset"


# ---- 6. SAML signing certificates ------------------------------------------------------------


async def test_saml_from_sign_in_url_and_certificate_sends_the_base64_of_the_pem(
    stack: Stack, db: Any
) -> None:
    initech = await organization(db, "initech")
    pem = self_signed_pem("idp.initech.example")
    validated = validate_saml_endpoint(
        "https://idp.initech.example/sso", pem, allow_loopback_http=False
    )
    async with db.get_session() as session:
        await session.execute(update(OutboxJob).values(status=OutboxStatus.DONE.value))
        connection = await SsoService(session, Caller.system(initech), stack.settings).save(
            validated,
            display_name="Initech SAML",
            assign_membership_on_login=False,
        )
        await session.commit()
    running = worker(stack.settings, db)
    try:
        statuses = await settle(running, db)
        at_auth0 = await running.client.connection_by_name(connection.auth0_connection_name)
    finally:
        await running.client.aclose()
    assert failed_errors(statuses) == 0, statuses
    assert at_auth0 is not None
    sent = at_auth0["options"]["signingCert"]
    assert "BEGIN" not in sent
    assert base64.b64decode(sent).decode().strip() == pem.strip()
    assert connection.options["signingCert"] == pem, "the app keeps the PEM it shows"
