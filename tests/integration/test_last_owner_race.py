"""Two racing demotions of the last two owners must leave exactly one owner.

Real concurrent transactions on separate connections, on PostgreSQL (row lock) and SQLite
(database write lock).
"""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from saas.audit.services import Actor
from saas.errors import LastOwnerError
from saas.members.services import MembershipService
from saas.organizations.services import OrganizationService
from saas.tenancy.permissions import Role
from saas.users.services import UserService

SYSTEM = Actor.system()


async def two_owner_org(factory: async_sessionmaker[AsyncSession]) -> tuple[UUID, UUID, UUID]:
    async with factory() as session:
        org = await OrganizationService(session=session).create_organization(
            slug="race", display_name="Race", actor=SYSTEM
        )
        ids = []
        for name in ("ann", "ben"):
            user = await UserService(session=session).upsert_by_sub(
                sub=f"auth0|{name}", email=f"{name}@race.example"
            )
            membership = await MembershipService(session=session).add(
                organization_id=org.id, user_id=user.id, role=Role.OWNER, actor=SYSTEM
            )
            ids.append(membership.id)
        await session.commit()
        return org.id, ids[0], ids[1]


async def demote(
    factory: async_sessionmaker[AsyncSession], org_id: UUID, membership_id: UUID
) -> str:
    async with factory() as session:
        try:
            await MembershipService(session=session).change_role(
                organization_id=org_id, membership_id=membership_id, role=Role.ADMIN, actor=SYSTEM
            )
            await session.commit()
        except LastOwnerError:
            await session.rollback()
            return "refused"
        return "demoted"


async def owner_count(factory: async_sessionmaker[AsyncSession], org_id: UUID) -> int:
    async with factory() as session:
        return await MembershipService(session=session).count_owners(org_id)


async def test_second_demotion_waits_for_the_first_and_is_refused(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    org_id, ann, ben = await two_owner_org(session_factory)
    async with session_factory() as first:
        await MembershipService(session=first).change_role(
            organization_id=org_id, membership_id=ann, role=Role.ADMIN, actor=SYSTEM
        )
        # The first transaction holds the organization lock and has not committed yet.
        second = asyncio.create_task(demote(session_factory, org_id, ben))
        await asyncio.sleep(0.5)
        assert not second.done(), "the second demotion must wait for the first transaction"
        await first.commit()
    assert await second == "refused"
    assert await owner_count(session_factory, org_id) == 1


@pytest.mark.parametrize("attempt", range(3))
async def test_simultaneous_demotions_leave_one_owner(
    session_factory: async_sessionmaker[AsyncSession], attempt: int
) -> None:
    org_id, ann, ben = await two_owner_org(session_factory)
    outcomes = await asyncio.gather(
        demote(session_factory, org_id, ann), demote(session_factory, org_id, ben)
    )
    assert sorted(outcomes) == ["demoted", "refused"]
    assert await owner_count(session_factory, org_id) == 1
