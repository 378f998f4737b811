"""The organization settings' writes against the other writes of the same organization, in real
concurrent transactions on both databases: the organization lock is always taken before a
membership row, so a rename racing the removal of the admin renaming cannot deadlock (on
PostgreSQL one of them used to fail with `deadlock detected`, answered as a 500), and two
verifications of one domain by its own organization record it once."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from saas.audit.actions import AuditAction
from saas.audit.services import Actor
from saas.config import Settings
from saas.db.config import create_sqlalchemy_config
from saas.db.models import AuditEvent, Membership, Organization, User
from saas.members.services import MembershipService
from saas.organizations.dns_verification import record_name
from saas.organizations.services import OrganizationService
from saas.organizations.settings import OrganizationSettingsService, domain_rows
from saas.tenancy.authority import ActingMember
from saas.tenancy.caller import Caller
from saas.tenancy.permissions import Role
from tests.support.dns_server import TxtZone

SYSTEM = Actor.system()


async def organization_with(
    session: AsyncSession, *roles: Role
) -> tuple[uuid.UUID, list[uuid.UUID], list[uuid.UUID]]:
    """A new organization with one member per role: its id, the users' and memberships' ids."""
    organization = await OrganizationService(session=session).create_organization(
        slug=f"lock-{uuid.uuid4().hex[:8]}", display_name="Lock Order", actor=SYSTEM
    )
    users, memberships = [], []
    for index, role in enumerate(roles):
        user = User(sub=f"auth0|lock-{uuid.uuid4().hex}", email=f"m{index}@lock.example")
        session.add(user)
        await session.flush()
        membership = Membership(organization_id=organization.id, user_id=user.id, role=role.value)
        session.add(membership)
        await session.flush()
        users.append(user.id)
        memberships.append(membership.id)
    await session.commit()
    return organization.id, users, memberships


async def test_a_rename_and_the_removal_of_the_admin_renaming_both_complete(
    session_factory: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    """The removal runs in another thread (its own loop and engine) and starts inside the
    rename, after the rename has read the admin's role and before it writes the organization's
    row: the one interleaving that deadlocked, made certain by holding the rename there."""
    async with session_factory() as session:
        org_id, (owner, admin), (_, admin_membership) = await organization_with(
            session, Role.OWNER, Role.ADMIN
        )

    async def remove_the_admin() -> None:
        engine = create_sqlalchemy_config(settings).get_engine()
        try:
            async with async_sessionmaker(engine, expire_on_commit=False)() as session:
                await MembershipService(session=session).remove(
                    organization_id=org_id,
                    membership_id=admin_membership,
                    actor=SYSTEM,
                    authority=ActingMember(owner),
                )
                await session.commit()
        finally:
            await engine.dispose()

    removal: list[threading.Thread] = []
    failures: list[BaseException] = []

    def start_the_removal(*_: object) -> None:
        if removal:
            return

        def run() -> None:
            try:
                asyncio.run(remove_the_admin())
            except BaseException as error:  # reported below
                failures.append(error)

        removal.append(threading.Thread(target=run))
        removal[0].start()
        time.sleep(1.0)  # the removal takes its locks while the rename is held here

    async with session_factory() as renaming:
        organization = await renaming.get_one(Organization, org_id)
        caller = Caller(organization=organization, authority=ActingMember(admin), actor=SYSTEM)
        event.listen(renaming.sync_session, "before_flush", start_the_removal)
        await OrganizationSettingsService(renaming, caller).rename("Lock Order Renamed")
        await renaming.commit()
    assert removal
    await asyncio.to_thread(removal[0].join, 30)
    assert failures == []

    async with session_factory() as session:
        organization = await session.get_one(Organization, org_id)
        assert organization.display_name == "Lock Order Renamed"
        assert await session.get(Membership, admin_membership) is None


async def test_two_verifications_of_a_domain_by_its_organization_record_it_once(
    session_factory: async_sessionmaker[AsyncSession], dns: tuple[str, TxtZone]
) -> None:
    """The settings page verifies; the console's verification of the same row read it before
    that committed. The console's then finds it verified: no second audit event, no second
    sync of the connections."""
    nameserver, zone = dns
    domain = f"d{uuid.uuid4().hex[:8]}.example"
    async with session_factory() as session:
        org_id, _, _ = await organization_with(session, Role.OWNER)
        record = await OrganizationService(session=session).add_domain(
            organization_id=org_id, domain=domain, actor=SYSTEM
        )
        zone.set_txt(record_name(domain), record.verification_token)
        [row] = await domain_rows(session, org_id)
        await session.commit()

    async def verify_from_console() -> bool:
        async with session_factory() as session:
            verified = await OrganizationService(session=session).verify_domain(
                organization_id=org_id, domain=domain, actor=SYSTEM, nameserver=nameserver
            )
            await session.commit()
            return verified.is_verified

    async with session_factory() as first:
        organization = await first.get_one(Organization, org_id)
        settings = OrganizationSettingsService(first, Caller.system(organization))
        assert (await settings.verify_domain(row.domain.id, nameserver=nameserver)).is_verified
        console = asyncio.create_task(verify_from_console())
        await asyncio.sleep(1.0)
        await first.commit()
    assert await asyncio.wait_for(console, 20)

    async with session_factory() as session:
        recorded = await session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(
                AuditEvent.organization_id == org_id,
                AuditEvent.action == AuditAction.DOMAIN_VERIFIED.value,
            )
        )
        assert recorded == 1
