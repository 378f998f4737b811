"""One open invitation per address and organization, held by the database; and an invitation
is accepted at most once, never after its revoke committed.

Real concurrent transactions on separate connections (SQLite: the write lock; PostgreSQL: the
partial unique index `uq_invitations_open_email`, the invitation's row lock), and two
concurrent requests over HTTP.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import secrets
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from saas.audit.services import Actor
from saas.auth0.jobs import INVITATION
from saas.db.config import create_sqlalchemy_config
from saas.db.models import AuditEvent, Invitation, Membership, OutboxJob, User
from saas.errors import Conflict, NotFound
from saas.invitations.services import BatchRefused, InvitationService
from saas.members.services import MembershipService
from saas.organizations.services import OrganizationService
from saas.tenancy.authority import ActingMember
from saas.tenancy.permissions import Role
from saas.users.services import UserService
from tests.support.held_request import HeldRequest
from tests.support.stack import Stack
from tests.support.tokens import access_token_for

SYSTEM = Actor.system()
WEEK = datetime.timedelta(days=7)
EMAIL = "carol@race.example"


async def org_with_admins(factory: async_sessionmaker[AsyncSession]) -> tuple[UUID, list[UUID]]:
    async with factory() as session:
        org = await OrganizationService(session=session).create_organization(
            slug="race", display_name="Race", actor=SYSTEM
        )
        admins = []
        for name in ("ann", "ben"):
            user = await UserService(session=session).upsert_by_sub(
                sub=f"auth0|{name}", email=f"{name}@race.example"
            )
            await MembershipService(session=session).add(
                organization_id=org.id, user_id=user.id, role=Role.ADMIN, actor=SYSTEM
            )
            admins.append(user.id)
        await session.commit()
        return org.id, admins


async def invite(session: AsyncSession, org_id: UUID, admin: UUID, email: str = EMAIL) -> None:
    await InvitationService(session=session).invite(
        organization_id=org_id,
        email=email,
        role=Role.MEMBER,
        actor=Actor(user_id=admin),
        authority=ActingMember(admin),
        ttl=WEEK,
    )


async def invite_and_commit(
    factory: async_sessionmaker[AsyncSession], org_id: UUID, admin: UUID, email: str = EMAIL
) -> str:
    async with factory() as session:
        try:
            await invite(session, org_id, admin, email)
            await session.commit()
        except Conflict:
            await session.rollback()
            return "refused"
        return "invited"


async def open_invitations_and_jobs(
    factory: async_sessionmaker[AsyncSession], org_id: UUID
) -> tuple[int, int]:
    async with factory() as session:
        open_count = await session.scalar(
            select(func.count())
            .select_from(Invitation)
            .where(
                Invitation.organization_id == org_id,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
            )
        )
        jobs = await session.scalar(
            select(func.count()).select_from(OutboxJob).where(OutboxJob.kind == INVITATION)
        )
        return int(open_count or 0), int(jobs or 0)


async def test_second_invitation_waits_for_the_first_and_is_refused(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    org_id, (ann, ben) = await org_with_admins(session_factory)
    async with session_factory() as first:
        await invite(first, org_id, ann)
        # The first transaction has written its invitation and not committed yet: the second
        # passes no check that would stop it before it writes, and must wait there.
        second = asyncio.create_task(invite_and_commit(session_factory, org_id, ben))
        await asyncio.sleep(0.5)
        assert not second.done(), "the second invitation must wait for the first transaction"
        await first.commit()
    assert await second == "refused"
    assert await open_invitations_and_jobs(session_factory, org_id) == (1, 1)


@pytest.mark.parametrize("attempt", range(3))
async def test_simultaneous_invitations_leave_one(
    session_factory: async_sessionmaker[AsyncSession], attempt: int
) -> None:
    org_id, (ann, ben) = await org_with_admins(session_factory)
    outcomes = await asyncio.gather(
        invite_and_commit(session_factory, org_id, ann),
        invite_and_commit(session_factory, org_id, ben, EMAIL.upper()),
    )
    assert sorted(outcomes) == ["invited", "refused"]
    assert await open_invitations_and_jobs(session_factory, org_id) == (1, 1)


async def test_a_batch_that_loses_a_race_for_one_address_writes_none_of_it(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """PostgreSQL: the batch's checks pass (the racing invitation is not committed), its first
    address is written, its second waits on the unique index and loses; the first is undone by
    the service itself, even for a caller that commits after the refusal. SQLite: the batch
    waits for the write lock and is refused by its checks."""
    org_id, (ann, ben) = await org_with_admins(session_factory)

    async def batch() -> list[str]:
        async with session_factory() as session:
            try:
                await InvitationService(session=session).invite_many(
                    organization_id=org_id,
                    emails=["dave@race.example", EMAIL],
                    role=Role.MEMBER,
                    actor=Actor(user_id=ben),
                    authority=ActingMember(ben),
                    ttl=WEEK,
                )
            except BatchRefused as refused:
                await session.commit()
                return [failure.detail for failure in refused.failures]
            await session.commit()
            return []

    async with session_factory() as first:
        await invite(first, org_id, ann)
        second = asyncio.create_task(batch())
        await asyncio.sleep(0.5)
        assert not second.done(), "the batch must wait for the racing invitation"
        await first.commit()
    assert await second == [f"{EMAIL} already has a pending invitation."]
    assert await open_invitations_and_jobs(session_factory, org_id) == (1, 1)
    async with session_factory() as session:
        created = await session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.organization_id == org_id, AuditEvent.action == "invitation.created")
        )
    assert created == 1


# ---- accepting while the invitation changes ---------------------------------------------


async def invited_user(factory: async_sessionmaker[AsyncSession]) -> tuple[UUID, UUID, str, User]:
    """An organization, an open admin invitation to carol, and carol's account."""
    org_id, (ann, _) = await org_with_admins(factory)
    async with factory() as session:
        invitation, ticket = await InvitationService(session=session).invite(
            organization_id=org_id,
            email=EMAIL,
            role=Role.ADMIN,
            actor=Actor(user_id=ann),
            authority=ActingMember(ann),
            ttl=WEEK,
        )
        carol = await UserService(session=session).upsert_by_sub(sub="auth0|carol", email=EMAIL)
        await session.commit()
    return org_id, invitation.id, ticket, carol


async def accept_and_commit(
    factory: async_sessionmaker[AsyncSession], org_id: UUID, ticket: str, user: User
) -> str:
    async with factory() as session:
        try:
            await InvitationService(session=session).accept(
                organization_id=org_id, ticket=ticket, user=user, actor=SYSTEM
            )
            await session.commit()
        except NotFound:
            await session.rollback()
            return "refused"
        return "accepted"


async def acceptance_footprint(
    factory: async_sessionmaker[AsyncSession], org_id: UUID, user: User
) -> tuple[int, int]:
    """Carol's memberships in the organization, and invitation.accepted audit events."""
    async with factory() as session:
        members = await session.scalar(
            select(func.count())
            .select_from(Membership)
            .where(Membership.organization_id == org_id, Membership.user_id == user.id)
        )
        accepted = await session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.organization_id == org_id, AuditEvent.action == "invitation.accepted")
        )
        return int(members or 0), int(accepted or 0)


async def test_an_invitation_revoked_while_it_is_accepted_is_refused(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    org_id, invitation_id, ticket, carol = await invited_user(session_factory)
    async with session_factory() as admin:
        await InvitationService(session=admin).revoke(
            organization_id=org_id, invitation_id=invitation_id, actor=SYSTEM
        )
        await admin.flush()
        # The revoke is written, not committed; the invitee's accept has read the invitation
        # as still open, and must wait for the revoke, then see it.
        accepting = asyncio.create_task(accept_and_commit(session_factory, org_id, ticket, carol))
        await asyncio.sleep(0.5)
        assert not accepting.done(), "the accept must wait for the revoke's transaction"
        await admin.commit()  # the admin is told: revoked
    assert await accepting == "refused"
    assert await acceptance_footprint(session_factory, org_id, carol) == (0, 0)
    async with session_factory() as session:
        row = await session.get(Invitation, invitation_id)
        assert row is not None
        assert row.accepted_at is None


async def test_an_invitation_accepted_while_it_is_revoked_stays_accepted(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """The other order: the accept is written first; the revoke must wait for it, then be told
    the invitation was accepted, and must not mark it revoked as well."""
    org_id, invitation_id, ticket, carol = await invited_user(session_factory)

    async def revoke_and_commit() -> str:
        async with session_factory() as admin:
            try:
                await InvitationService(session=admin).revoke(
                    organization_id=org_id, invitation_id=invitation_id, actor=SYSTEM
                )
            except Conflict:
                return "refused"
            await admin.commit()
            return "revoked"

    async with session_factory() as invitee:
        await InvitationService(session=invitee).accept(
            organization_id=org_id, ticket=ticket, user=carol, actor=SYSTEM
        )
        revoking = asyncio.create_task(revoke_and_commit())
        await asyncio.sleep(0.5)
        assert not revoking.done(), "the revoke must wait for the accept's transaction"
        await invitee.commit()
    assert await revoking == "refused"
    async with session_factory() as session:
        row = await session.get(Invitation, invitation_id)
        assert row is not None
        assert row.accepted_at is not None
        assert row.revoked_at is None


async def test_one_invitation_accepted_in_two_tabs_at_once_is_accepted_once(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    org_id, _, ticket, carol = await invited_user(session_factory)
    async with session_factory() as first_tab:
        await InvitationService(session=first_tab).accept(
            organization_id=org_id, ticket=ticket, user=carol, actor=SYSTEM
        )
        second_tab = asyncio.create_task(accept_and_commit(session_factory, org_id, ticket, carol))
        await asyncio.sleep(0.5)
        assert not second_tab.done(), "the second accept must wait for the first transaction"
        await first_tab.commit()
    assert await second_tab == "refused"
    assert await acceptance_footprint(session_factory, org_id, carol) == (1, 1)


def _row(org_id: UUID, email: str, **values: object) -> Invitation:
    return Invitation(
        organization_id=org_id,
        email=email,
        role="member",
        token_hash=secrets.token_hex(32),
        expires_at=datetime.datetime.now(datetime.UTC) + WEEK,
        **values,
    )


async def test_the_database_holds_one_open_invitation_per_address(
    session: AsyncSession,
) -> None:
    """Whatever the service checks: the partial unique index itself, on both backends."""
    orgs = OrganizationService(session=session)
    acme = await orgs.create_organization(slug="acme", display_name="Acme", actor=SYSTEM)
    globex = await orgs.create_organization(slug="globex", display_name="Globex", actor=SYSTEM)
    now = datetime.datetime.now(datetime.UTC)
    session.add_all(
        [
            _row(acme.id, EMAIL),
            # Closed ones do not count, nor another organization's.
            _row(acme.id, EMAIL, accepted_at=now),
            _row(acme.id, EMAIL, revoked_at=now),
            _row(globex.id, EMAIL),
        ]
    )
    await session.commit()
    for spelling in (EMAIL, EMAIL.upper()):
        async with session.begin_nested():
            session.add(_row(acme.id, spelling))
            with pytest.raises(IntegrityError):
                await session.flush()


async def test_an_expired_invitation_is_closed_by_the_next_one(session: AsyncSession) -> None:
    org = await OrganizationService(session=session).create_organization(
        slug="acme", display_name="Acme", actor=SYSTEM
    )
    service = InvitationService(session=session)
    old, _ = await service.invite(
        organization_id=org.id,
        email=EMAIL,
        role=Role.MEMBER,
        actor=SYSTEM,
        authority=None,
        ttl=datetime.timedelta(seconds=-1),
    )
    new, _ = await service.invite(
        organization_id=org.id,
        email=EMAIL,
        role=Role.MEMBER,
        actor=SYSTEM,
        authority=None,
        ttl=WEEK,
    )
    await session.refresh(old)
    assert old.revoked_at is not None
    assert new.revoked_at is None
    assert new.id != old.id
    with pytest.raises(Conflict, match="pending invitation"):
        await service.invite(
            organization_id=org.id,
            email=EMAIL,
            role=Role.MEMBER,
            actor=SYSTEM,
            authority=None,
            ttl=WEEK,
        )


# ---- over HTTP ------------------------------------------------------------------------------


def invitation_jobs_for(stack: Stack, email: str) -> tuple[int, int]:
    """(invitations to `email`, invitation sync jobs for them)."""

    async def run() -> tuple[int, int]:
        config = create_sqlalchemy_config(stack.settings)
        try:
            async with config.get_session() as session:
                ids = {
                    str(i)
                    for i in await session.scalars(
                        select(Invitation.id).where(Invitation.email == email)
                    )
                }
                jobs = [
                    job
                    for job in await session.scalars(
                        select(OutboxJob).where(OutboxJob.kind == INVITATION)
                    )
                    if job.payload.get("invitation_id") in ids
                ]
                return len(ids), len(jobs)
        finally:
            await config.get_engine().dispose()

    return asyncio.run(run())


def test_two_concurrent_api_invitations_give_one_201_and_one_409(stack: Stack) -> None:
    tokens = []
    for email in ("alice@acme.example", "adam@acme.example"):
        browser = stack.browser()
        browser.login(email)
        tokens.append(access_token_for(browser, "org_AcmeDemo00000001"))
    body = json.dumps({"email": "dora@acme.example", "role": "member"}).encode()
    requests = [
        HeldRequest(
            url=stack.app_url + "/api/v1/orgs/acme/invitations",
            body=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        for token in tokens
    ]
    # Both are past their guards and waiting for their bodies; then both bodies go at once.
    for request in requests:
        request.start()
    with ThreadPoolExecutor(max_workers=2) as pool:
        responses = list(pool.map(lambda request: request.finish(), requests))
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201, 409], [r.text for r in responses]
    refused = next(r for r in responses if r.status_code == 409)
    assert refused.headers["content-type"] == "application/problem+json"
    assert "pending invitation" in refused.json()["detail"]
    assert invitation_jobs_for(stack, "dora@acme.example") == (1, 1)
