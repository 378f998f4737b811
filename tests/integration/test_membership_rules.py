"""Membership invariants, on both backends: owners, admins, audit in the same transaction."""

from __future__ import annotations

from uuid import UUID

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.services import Actor
from saas.db.models import AuditEvent, Membership, Organization, User
from saas.errors import Conflict, Forbidden, InvalidInput, LastOwnerError, NotFound
from saas.members.services import MembershipService
from saas.organizations.services import OrganizationService
from saas.tenancy.authority import ActingMember
from saas.tenancy.permissions import Role
from saas.users.services import UserService

SYSTEM = Actor.system()


async def make_org(session: AsyncSession, slug: str = "acme") -> Organization:
    return await OrganizationService(session=session).create_organization(
        slug=slug, display_name=slug.title(), actor=SYSTEM
    )


async def make_user(session: AsyncSession, name: str) -> User:
    return await UserService(session=session).upsert_by_sub(
        sub=f"auth0|{name}", email=f"{name}@acme.example", name=name.title()
    )


async def add(session: AsyncSession, org: Organization, user: User, role: Role) -> Membership:
    return await MembershipService(session=session).add(
        organization_id=org.id, user_id=user.id, role=role, actor=SYSTEM
    )


async def audit_actions(session: AsyncSession, org_id: UUID) -> list[str]:
    rows = await session.execute(
        select(AuditEvent.action)
        .where(AuditEvent.organization_id == org_id)
        .order_by(AuditEvent.created_at, AuditEvent.id)
    )
    return list(rows.scalars())


async def test_last_owner_cannot_be_demoted_or_removed(session: AsyncSession) -> None:
    org = await make_org(session)
    owner = await add(session, org, await make_user(session, "alice"), Role.OWNER)
    members = MembershipService(session=session)
    with pytest.raises(LastOwnerError):
        await members.change_role(
            organization_id=org.id, membership_id=owner.id, role=Role.ADMIN, actor=SYSTEM
        )
    with pytest.raises(LastOwnerError):
        await members.remove(organization_id=org.id, membership_id=owner.id, actor=SYSTEM)
    assert await members.count_owners(org.id) == 1


async def test_second_owner_makes_demotion_possible(session: AsyncSession) -> None:
    org = await make_org(session)
    alice = await add(session, org, await make_user(session, "alice"), Role.OWNER)
    await add(session, org, await make_user(session, "carol"), Role.OWNER)
    members = MembershipService(session=session)
    changed = await members.change_role(
        organization_id=org.id, membership_id=alice.id, role=Role.MEMBER, actor=SYSTEM
    )
    assert changed.role == Role.MEMBER
    assert await members.count_owners(org.id) == 1
    assert (await audit_actions(session, org.id))[-1] == "member.role_changed"


async def test_admin_cannot_touch_owners_or_grant_above_own_role(session: AsyncSession) -> None:
    org = await make_org(session)
    owner = await add(session, org, await make_user(session, "alice"), Role.OWNER)
    await add(session, org, await make_user(session, "dave"), Role.OWNER)
    bob = await add(session, org, await make_user(session, "bob"), Role.MEMBER)
    ann = await add(session, org, await make_user(session, "ann"), Role.ADMIN)
    admin = ActingMember(ann.user_id)
    members = MembershipService(session=session)
    with pytest.raises(Forbidden):
        await members.change_role(
            organization_id=org.id,
            membership_id=owner.id,
            role=Role.MEMBER,
            actor=SYSTEM,
            authority=admin,
        )
    with pytest.raises(Forbidden):
        await members.remove(
            organization_id=org.id, membership_id=owner.id, actor=SYSTEM, authority=admin
        )
    with pytest.raises(Forbidden):
        await members.change_role(
            organization_id=org.id,
            membership_id=bob.id,
            role=Role.OWNER,
            actor=SYSTEM,
            authority=admin,
        )
    promoted = await members.change_role(
        organization_id=org.id,
        membership_id=bob.id,
        role=Role.ADMIN,
        actor=SYSTEM,
        authority=admin,
    )
    assert promoted.role == Role.ADMIN


async def test_memberships_of_another_tenant_are_not_found(session: AsyncSession) -> None:
    acme = await make_org(session, "acme")
    globex = await make_org(session, "globex")
    gina = await add(session, globex, await make_user(session, "gina"), Role.MEMBER)
    members = MembershipService(session=session)
    with pytest.raises(NotFound):
        await members.remove(organization_id=acme.id, membership_id=gina.id, actor=SYSTEM)
    with pytest.raises(NotFound):
        await members.change_role(
            organization_id=acme.id, membership_id=gina.id, role=Role.VIEWER, actor=SYSTEM
        )


async def test_duplicate_membership_and_unknown_role_are_refused(session: AsyncSession) -> None:
    org = await make_org(session)
    user = await make_user(session, "alice")
    await add(session, org, user, Role.MEMBER)
    with pytest.raises(Conflict):
        await add(session, org, user, Role.ADMIN)
    with pytest.raises(InvalidInput):
        await MembershipService(session=session).add(
            organization_id=org.id, user_id=user.id, role="superuser", actor=SYSTEM
        )


async def test_audit_event_shares_the_transaction(session: AsyncSession) -> None:
    org = await make_org(session)
    org_id = org.id
    await session.commit()
    user = await make_user(session, "alice")
    await add(session, org, user, Role.MEMBER)
    assert "member.added" in await audit_actions(session, org_id)
    await session.rollback()
    # The membership and its audit event went away together.
    count = await session.scalar(select(func.count()).select_from(Membership))
    assert count == 0
    assert "member.added" not in await audit_actions(session, org_id)


async def test_removal_writes_audit_with_actor(session: AsyncSession) -> None:
    org = await make_org(session)
    alice_user = await make_user(session, "alice")
    await add(session, org, alice_user, Role.OWNER)
    bob = await add(session, org, await make_user(session, "bob"), Role.MEMBER)
    actor = Actor(user_id=alice_user.id, ip_address="203.0.113.5", user_agent="pytest")
    await MembershipService(session=session).remove(
        organization_id=org.id,
        membership_id=bob.id,
        actor=actor,
        authority=ActingMember(alice_user.id),
    )
    event = (
        await session.execute(select(AuditEvent).where(AuditEvent.action == "member.removed"))
    ).scalar_one()
    assert event.actor_id == alice_user.id
    assert event.target_id == str(bob.user_id)
    assert event.ip_address == "203.0.113.5"
    assert event.details == {"role": "member"}
