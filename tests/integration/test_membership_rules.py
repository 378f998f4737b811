"""Membership invariants, on both backends: owners, admins, audit in the same transaction."""

from __future__ import annotations

import asyncio
import datetime
from uuid import UUID

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from saas.audit.services import Actor
from saas.db.models import AuditEvent, Membership, Organization, RemovedMember, User
from saas.errors import Conflict, Forbidden, InvalidInput, LastOwnerError, NotFound
from saas.invitations.services import InvitationService
from saas.login.errors import RemovedFromOrganization
from saas.login.membership import resolve_membership
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


# ---- a removal sticks: just-in-time provisioning does not undo it --------------------------


async def jit_org(session: AsyncSession, slug: str = "jit") -> Organization:
    org = await OrganizationService(session=session).create_organization(
        slug=slug, display_name="Jit Corp", actor=SYSTEM, jit_provisioning=True
    )
    await OrganizationService(session=session).add_domain(
        organization_id=org.id, domain="jit.example", actor=SYSTEM, verified=True
    )
    return org


async def jit_user(session: AsyncSession, name: str) -> User:
    return await UserService(session=session).upsert_by_sub(
        sub=f"samlp|jit|{name}@jit.example", email=f"{name}@jit.example", name=name.title()
    )


async def sign_in(session: AsyncSession, org: Organization, user: User) -> Membership:
    return await resolve_membership(
        session,
        user=await session.get_one(User, user.id),
        organization=await session.get_one(Organization, org.id),
        invitation_ticket=None,
        email_verified=True,
        actor=SYSTEM,
    )


async def removed_rows(session: AsyncSession, org: Organization, user: User) -> int:
    statement = select(func.count()).where(
        RemovedMember.organization_id == org.id, RemovedMember.user_id == user.id
    )
    return int(await session.scalar(statement) or 0)


async def test_a_removed_person_is_not_provisioned_again_until_invited(
    session: AsyncSession,
) -> None:
    org = await jit_org(session)
    owner = await jit_user(session, "olga")
    await add(session, org, owner, Role.OWNER)
    nina = await jit_user(session, "nina")
    joined = await sign_in(session, org, nina)  # just in time
    await MembershipService(session=session).remove(
        organization_id=org.id,
        membership_id=joined.id,
        actor=Actor(user_id=owner.id),
        authority=ActingMember(owner.id),
    )
    assert await removed_rows(session, org, nina) == 1

    with pytest.raises(RemovedFromOrganization) as refused:
        await sign_in(session, org, nina)
    assert refused.value.detail == (
        "You were removed from Jit Corp; ask an admin to invite you again."
    )
    assert refused.value.status_code == 403
    assert await MembershipService(session=session).find(org.id, nina.id) is None

    # An invitation accepted: an administrator let her in again, and the record goes with it.
    invitations = InvitationService(session=session)
    _, ticket = await invitations.invite(
        organization_id=org.id,
        email=nina.email,
        role=Role.VIEWER,
        actor=Actor(user_id=owner.id),
        authority=ActingMember(owner.id),
        ttl=datetime.timedelta(days=1),
    )
    back = await invitations.accept(organization_id=org.id, ticket=ticket, user=nina, actor=SYSTEM)
    assert back.role == Role.VIEWER.value
    assert await removed_rows(session, org, nina) == 0

    # Removed again: recorded again, once (the unique constraint holds one row).
    await MembershipService(session=session).remove(
        organization_id=org.id,
        membership_id=back.id,
        actor=Actor(user_id=owner.id),
        authority=ActingMember(owner.id),
    )
    assert await removed_rows(session, org, nina) == 1


async def test_leaving_is_not_a_removal(session: AsyncSession) -> None:
    """Who leaves on their own may come back just in time: only an admin's removal sticks."""
    org = await jit_org(session)
    await add(session, org, await jit_user(session, "olga"), Role.OWNER)
    nina = await jit_user(session, "nina")
    await sign_in(session, org, nina)
    await MembershipService(session=session).leave(
        organization_id=org.id, user_id=nina.id, actor=Actor(user_id=nina.id)
    )
    assert await removed_rows(session, org, nina) == 0
    assert (await sign_in(session, org, nina)).role == Role.MEMBER.value


async def test_a_second_record_of_one_removal_is_refused_by_the_database(
    session: AsyncSession,
) -> None:
    org = await jit_org(session)
    nina = await jit_user(session, "nina")
    session.add(RemovedMember(organization_id=org.id, user_id=nina.id, email=nina.email))
    await session.flush()
    session.add(RemovedMember(organization_id=org.id, user_id=nina.id, email=nina.email))
    with pytest.raises(IntegrityError):
        await session.flush()


async def test_a_removal_racing_a_just_in_time_sign_in_leaves_no_member(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """Real concurrent transactions: the removal holds the organization's lock, uncommitted,
    while the sign-in runs. Whatever the sign-in saw, once both are done she is no member,
    and a sign-in after that is refused."""
    async with session_factory() as setup:
        org = await jit_org(setup)
        owner = await jit_user(setup, "olga")
        await add(setup, org, owner, Role.OWNER)
        nina = await jit_user(setup, "nina")
        joined = await sign_in(setup, org, nina)
        await setup.commit()

    async def sign_in_and_commit() -> str:
        async with session_factory() as other:
            try:
                await sign_in(other, org, nina)
            except RemovedFromOrganization:
                await other.rollback()
                return "refused"
            await other.commit()
            return "signed in"

    async with session_factory() as removal:
        await MembershipService(session=removal).remove(
            organization_id=org.id,
            membership_id=joined.id,
            actor=Actor(user_id=owner.id),
            authority=ActingMember(owner.id),
        )
        racing = asyncio.create_task(sign_in_and_commit())
        await asyncio.sleep(0.5)
        await removal.commit()
    assert await racing in {"refused", "signed in"}
    async with session_factory() as check:
        assert await MembershipService(session=check).find(org.id, nina.id) is None
        with pytest.raises(RemovedFromOrganization):
            await sign_in(check, org, nina)


async def test_an_invitation_older_than_the_removal_does_not_undo_it(
    session: AsyncSession,
) -> None:
    """Invited, then joined just in time before accepting, then removed: the old invitation,
    still open, is not an administrator's word after the removal."""
    org = await jit_org(session)
    owner = await jit_user(session, "olga")
    await add(session, org, owner, Role.OWNER)
    nina = await jit_user(session, "nina")
    invitations = InvitationService(session=session)
    _, old_ticket = await invitations.invite(
        organization_id=org.id,
        email=nina.email,
        role=Role.ADMIN,
        actor=Actor(user_id=owner.id),
        authority=ActingMember(owner.id),
        ttl=datetime.timedelta(days=1),
    )
    joined = await sign_in(session, org, nina)
    await MembershipService(session=session).remove(
        organization_id=org.id,
        membership_id=joined.id,
        actor=Actor(user_id=owner.id),
        authority=ActingMember(owner.id),
    )
    with pytest.raises(NotFound):
        await invitations.accept(organization_id=org.id, ticket=old_ticket, user=nina, actor=SYSTEM)
    assert await removed_rows(session, org, nina) == 1
    assert await MembershipService(session=session).find(org.id, nina.id) is None


async def test_a_removal_holds_for_the_same_mailbox_through_another_connection(
    session: AsyncSession,
) -> None:
    """The same person signing in through another connection of the organization (the shared
    password database, or a replaced SSO connection) has another `sub`, so another user row:
    the removal is kept by address as well, and just-in-time provisioning still refuses."""
    org = await jit_org(session)
    owner = await jit_user(session, "olga")
    await add(session, org, owner, Role.OWNER)
    nina = await jit_user(session, "nina")
    joined = await sign_in(session, org, nina)
    await MembershipService(session=session).remove(
        organization_id=org.id,
        membership_id=joined.id,
        actor=Actor(user_id=owner.id),
        authority=ActingMember(owner.id),
    )
    elsewhere = await UserService(session=session).upsert_by_sub(
        sub="auth0|nina-password", email="Nina@JIT.example", name="Nina"
    )
    with pytest.raises(RemovedFromOrganization):
        await sign_in(session, org, elsewhere)
    assert await MembershipService(session=session).find(org.id, elsewhere.id) is None

    # An invitation accepted by that identity lets the person in, and forgets both records.
    invitations = InvitationService(session=session)
    _, ticket = await invitations.invite(
        organization_id=org.id,
        email="nina@jit.example",
        role=Role.MEMBER,
        actor=Actor(user_id=owner.id),
        authority=ActingMember(owner.id),
        ttl=datetime.timedelta(days=1),
    )
    await invitations.accept(organization_id=org.id, ticket=ticket, user=elsewhere, actor=SYSTEM)
    assert await removed_rows(session, org, nina) == 0
    assert (await sign_in(session, org, nina)).role == org.default_role
