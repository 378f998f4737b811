from __future__ import annotations

import datetime
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.services import Actor
from saas.db.models import AuditEvent, Invitation
from saas.errors import Conflict, Forbidden, InvalidInput, NotFound
from saas.invitations.services import InvitationService
from saas.invitations.tickets import hash_ticket
from saas.members.services import MembershipService
from saas.organizations.services import OrganizationService
from saas.tenancy.authority import ActingMember
from saas.tenancy.permissions import Role
from saas.users.services import UserService

SYSTEM = Actor.system()
WEEK = datetime.timedelta(days=7)


@pytest.fixture
async def org_id(session: AsyncSession) -> UUID:
    org = await OrganizationService(session=session).create_organization(
        slug="acme", display_name="Acme", actor=SYSTEM
    )
    return org.id


async def member_of(session: AsyncSession, org_id: UUID, role: Role) -> ActingMember:
    """A member of the organization with `role`, as a request acting for them names them."""
    name = f"{role}-{org_id.hex[:8]}"
    user = await UserService(session=session).upsert_by_sub(
        sub=f"auth0|{name}", email=f"{name}@acme.example"
    )
    members = MembershipService(session=session)
    if await members.find(org_id, user.id) is None:
        await members.add(organization_id=org_id, user_id=user.id, role=role, actor=SYSTEM)
    return ActingMember(user.id)


async def invite(
    session: AsyncSession, org_id: UUID, email: str, role: Role = Role.MEMBER, **kw: Any
) -> tuple[Invitation, str]:
    if "authority" not in kw:
        kw["authority"] = await member_of(session, org_id, Role.ADMIN)
    return await InvitationService(session=session).invite(
        organization_id=org_id, email=email, role=role, actor=SYSTEM, ttl=kw.pop("ttl", WEEK), **kw
    )


async def test_invitation_stores_only_a_hash_and_audits(
    session: AsyncSession, org_id: UUID
) -> None:
    invitation, ticket = await invite(session, org_id, "Carol@ACME.example")
    assert invitation.email == "carol@acme.example"
    assert invitation.token_hash == hash_ticket(ticket)
    assert ticket not in invitation.token_hash
    actions = (await session.execute(select(AuditEvent.action))).scalars().all()
    assert "invitation.created" in actions


async def test_duplicates_members_and_high_roles_are_refused(
    session: AsyncSession, org_id: UUID
) -> None:
    await invite(session, org_id, "carol@acme.example")
    with pytest.raises(Conflict, match="pending invitation"):
        await invite(session, org_id, "CAROL@acme.example")
    user = await UserService(session=session).upsert_by_sub(sub="auth0|d", email="dan@acme.example")
    await MembershipService(session=session).add(
        organization_id=org_id, user_id=user.id, role=Role.MEMBER, actor=SYSTEM
    )
    with pytest.raises(Conflict, match="already a member"):
        await invite(session, org_id, "dan@acme.example")
    with pytest.raises(Forbidden):
        await invite(session, org_id, "erin@acme.example", role=Role.OWNER)
    with pytest.raises(InvalidInput):
        await invite(session, org_id, "not-an-email")


async def test_accept_requires_same_email_and_is_single_use(
    session: AsyncSession, org_id: UUID
) -> None:
    invitation, ticket = await invite(session, org_id, "carol@acme.example", role=Role.ADMIN)
    service = InvitationService(session=session)
    users = UserService(session=session)
    mallory = await users.upsert_by_sub(sub="auth0|m", email="mallory@evil.example")
    with pytest.raises(Forbidden):
        await service.accept(organization_id=org_id, ticket=ticket, user=mallory, actor=SYSTEM)
    carol = await users.upsert_by_sub(sub="samlp|acme-saml|carol", email="carol@acme.example")
    membership = await service.accept(
        organization_id=org_id, ticket=ticket, user=carol, actor=SYSTEM
    )
    assert membership.role == Role.ADMIN
    assert (await session.get(Invitation, invitation.id)).accepted_at is not None  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        await service.accept(organization_id=org_id, ticket=ticket, user=carol, actor=SYSTEM)


async def test_revoked_expired_and_foreign_tickets_are_not_valid(
    session: AsyncSession, org_id: UUID
) -> None:
    service = InvitationService(session=session)
    revoked, revoked_ticket = await invite(session, org_id, "r@acme.example")
    await service.revoke(organization_id=org_id, invitation_id=revoked.id, actor=SYSTEM)
    _, expired_ticket = await invite(
        session, org_id, "e@acme.example", ttl=datetime.timedelta(seconds=-1)
    )
    other = await OrganizationService(session=session).create_organization(
        slug="globex", display_name="Globex", actor=SYSTEM
    )
    _, foreign_ticket = await invite(session, other.id, "f@acme.example")
    for ticket in (revoked_ticket, expired_ticket, foreign_ticket, "made-up"):
        with pytest.raises(NotFound):
            await service.get_pending_by_ticket(org_id, ticket)
    # A revoked invitation no longer blocks a fresh one.
    await invite(session, org_id, "r@acme.example")


async def test_admins_cannot_rearm_or_withdraw_owner_invitations(
    session: AsyncSession, org_id: UUID
) -> None:
    service = InvitationService(session=session)
    admin = await member_of(session, org_id, Role.ADMIN)
    owner = await member_of(session, org_id, Role.OWNER)
    owner_invitation, _ = await invite(
        session, org_id, "boss@acme.example", role=Role.OWNER, authority=None
    )
    with pytest.raises(Forbidden):
        await service.resend(
            organization_id=org_id,
            invitation_id=owner_invitation.id,
            actor=SYSTEM,
            ttl=WEEK,
            authority=admin,
        )
    with pytest.raises(Forbidden):
        await service.revoke(
            organization_id=org_id,
            invitation_id=owner_invitation.id,
            actor=SYSTEM,
            authority=admin,
        )
    revoked = await service.revoke(
        organization_id=org_id,
        invitation_id=owner_invitation.id,
        actor=SYSTEM,
        authority=owner,
    )
    assert revoked.revoked_at is not None
