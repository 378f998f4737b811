"""Domain claims on both databases: a claim blocks no one, one organization at most verifies a
domain, an organization waits to verify a bounded number, and the races on those rules end in
a Conflict (never an IntegrityError, never a 500) with the database's rows still right.

The concurrent tests run two real transactions: the second starts before the first commits,
and must wait for it (PostgreSQL: the organization's row lock or the partial unique index on
verified domains; SQLite: the database's write lock)."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from saas.audit.services import Actor
from saas.db.models import Organization, OrganizationDomain
from saas.errors import Conflict, NotFound
from saas.organizations.dns_verification import record_name
from saas.organizations.services import (
    MAX_PENDING_DOMAINS,
    DomainStanding,
    OrganizationService,
    mark_domain_verified,
)
from saas.organizations.settings import OrganizationSettingsService, domain_rows
from saas.tenancy.caller import Caller
from tests.support.dns_server import TxtZone

SYSTEM = Actor.system()
DOMAIN = "bigcorp.example"


async def organizations(session: AsyncSession, *slugs: str) -> list[uuid.UUID]:
    """New organizations' ids (ids: a rollback expires the rows themselves)."""
    service = OrganizationService(session=session)
    created = [
        (await service.create_organization(slug=slug, display_name=slug.title(), actor=SYSTEM)).id
        for slug in slugs
    ]
    await session.commit()
    return created


async def claim(session: AsyncSession, org: uuid.UUID, domain: str = DOMAIN) -> str:
    """Claim `domain` for `org`; its verification token."""
    record = await OrganizationService(session=session).add_domain(
        organization_id=org, domain=domain, actor=SYSTEM
    )
    return record.verification_token


async def verify(
    session: AsyncSession, org: uuid.UUID, nameserver: str, domain: str = DOMAIN
) -> OrganizationDomain:
    return await OrganizationService(session=session).verify_domain(
        organization_id=org, domain=domain, actor=SYSTEM, nameserver=nameserver
    )


Write = Callable[[AsyncSession], Awaitable[object]]


async def committed_or_refused(
    session_factory: async_sessionmaker[AsyncSession], write: Write
) -> str:
    """`write` in a transaction of its own: "committed", or the detail of its Conflict."""
    async with session_factory() as session:
        try:
            await write(session)
        except Conflict as refused:
            await session.rollback()
            return refused.detail
        await session.commit()
        return "committed"


async def second_waits_for_first(
    session_factory: async_sessionmaker[AsyncSession],
    first: Write,
    second: Write,
    *,
    settle: float = 0.5,
) -> str:
    """`first` in an open transaction, then `second` in another, which must wait until the
    first commits; what became of the second."""
    async with session_factory() as session:
        await first(session)
        task = asyncio.create_task(committed_or_refused(session_factory, second))
        await asyncio.sleep(settle)
        assert not task.done(), "the second write must wait for the first"
        await session.commit()
    return await task


async def holders(session: AsyncSession, domain: str = DOMAIN) -> dict[uuid.UUID, bool]:
    """Which organizations hold `domain`, and whether verified."""
    rows = await session.execute(
        select(OrganizationDomain.organization_id, OrganizationDomain.verified_at).where(
            OrganizationDomain.domain == domain
        )
    )
    return {org_id: verified_at is not None for org_id, verified_at in rows}


async def test_a_pending_claim_blocks_no_other_organization(session: AsyncSession) -> None:
    squatter, owner = await organizations(session, "squatter", "owner")
    await claim(session, squatter)
    service = OrganizationService(session=session)
    assert await service.domain_standing(owner, "BigCorp.example.") is DomainStanding.FREE
    assert await service.domain_standing(squatter, DOMAIN) is DomainStanding.ON_THIS_ORGANIZATION
    await claim(session, owner, "BIGCORP.example")  # any spelling
    await session.commit()
    assert await holders(session) == {squatter: False, owner: False}


async def test_a_domain_already_on_the_list_is_refused(session: AsyncSession) -> None:
    (org,) = await organizations(session, "acme")
    await claim(session, org)
    await session.commit()
    with pytest.raises(Conflict, match="already claimed by this organization") as refused:
        await claim(session, org, "BigCorp.Example.")
    assert refused.value.field == "domain"
    await session.rollback()
    # The database refuses it too, whatever code path tries.
    now = datetime.datetime.now(datetime.UTC)
    with pytest.raises(IntegrityError):
        await session.execute(
            insert(OrganizationDomain).values(
                id=uuid.uuid4(),
                organization_id=org,
                domain=DOMAIN,
                verification_token="x",
                created_at=now,
                updated_at=now,
            )
        )


async def test_a_domain_verified_elsewhere_cannot_be_claimed_or_verified(
    session: AsyncSession, dns: tuple[str, TxtZone]
) -> None:
    nameserver, zone = dns
    owner, early, late = await organizations(session, "owner", "early", "late")
    owner_token = await claim(session, owner)
    early_token = await claim(session, early)  # claimed before the owner verified
    await session.commit()
    zone.set_txt(record_name(DOMAIN), owner_token, early_token)  # both published

    assert (await verify(session, owner, nameserver)).is_verified
    await session.commit()

    with pytest.raises(Conflict, match="another organization has verified it") as refused:
        await claim(session, late)
    assert refused.value.field == "domain"
    await session.rollback()
    service = OrganizationService(session=session)
    assert await service.domain_standing(late, DOMAIN) is DomainStanding.VERIFIED_ELSEWHERE

    with pytest.raises(Conflict, match=f"Another organization has already verified {DOMAIN}"):
        await verify(session, early, nameserver)
    # The transaction is still usable, and nothing changed.
    assert await holders(session) == {owner: True, early: False}
    await session.rollback()

    # The partial unique index refuses a second verified row, whatever code path tries.
    now = datetime.datetime.now(datetime.UTC)
    with pytest.raises(IntegrityError):
        async with session.begin_nested():
            await session.execute(
                update(OrganizationDomain)
                .where(OrganizationDomain.organization_id == early)
                .values(verified_at=now)
            )


async def test_the_settings_rows_show_a_claim_verified_elsewhere_as_taken(
    session: AsyncSession, dns: tuple[str, TxtZone]
) -> None:
    nameserver, zone = dns
    owner, early = await organizations(session, "owner", "early")
    owner_token = await claim(session, owner)
    await claim(session, early)
    await claim(session, early, "other.example")
    await session.commit()
    [row] = await domain_rows(session, owner)
    assert (row.taken, row.verifiable) == (False, True)

    zone.set_txt(record_name(DOMAIN), owner_token)
    await verify(session, owner, nameserver)
    await session.commit()
    [row] = await domain_rows(session, owner)
    assert (row.verified, row.taken, row.verifiable) == (True, False, False)
    rows = {row.domain.domain: row for row in await domain_rows(session, early)}
    assert (rows[DOMAIN].taken, rows[DOMAIN].verifiable) == (True, False)
    assert (rows["other.example"].taken, rows["other.example"].verifiable) == (False, True)


async def test_pending_domains_are_capped_per_organization(session: AsyncSession) -> None:
    acme, globex = await organizations(session, "acme", "globex")
    for i in range(MAX_PENDING_DOMAINS):
        await claim(session, acme, f"d{i}.example")
    await session.commit()
    with pytest.raises(Conflict, match=f"already has {MAX_PENDING_DOMAINS} domains waiting"):
        await claim(session, acme, "one-more.example")
    await session.rollback()
    # The cap is on unverified domains of one organization: not on verified ones, nor others.
    service = OrganizationService(session=session)
    await service.add_domain(
        organization_id=acme, domain="verified.example", actor=SYSTEM, verified=True
    )
    await claim(session, globex, "one-more.example")
    await session.commit()
    # Removing one makes room again.
    await session.execute(
        delete(OrganizationDomain).where(OrganizationDomain.domain == "d0.example")
    )
    await claim(session, acme, "one-more.example")
    await session.commit()


async def test_a_verified_add_takes_a_domain_from_pending_claims_only(
    session: AsyncSession,
) -> None:
    """The seed's and operators' verified add: another organization's pending claim does not
    stop it; a verification elsewhere does."""
    squatter, owner, late = await organizations(session, "squatter", "owner", "late")
    await claim(session, squatter)
    service = OrganizationService(session=session)
    record = await service.add_domain(
        organization_id=owner, domain=DOMAIN, actor=SYSTEM, verified=True
    )
    assert record.is_verified
    await session.commit()
    with pytest.raises(Conflict, match="another organization has verified it"):
        await service.add_domain(organization_id=late, domain=DOMAIN, actor=SYSTEM, verified=True)
    await session.rollback()
    assert await holders(session) == {squatter: False, owner: True}


# ---- real concurrent transactions ------------------------------------------------------


async def test_two_organizations_verifying_one_domain_at_once_leave_one_verified(
    session_factory: async_sessionmaker[AsyncSession], dns: tuple[str, TxtZone]
) -> None:
    """Both find their token published and neither sees the other's verification (it is not
    committed yet): the partial unique index lets the first UPDATE through and makes the second
    wait for its commit, then fail, which answers a Conflict in a transaction still usable."""
    nameserver, zone = dns
    async with session_factory() as session:
        first_org, second_org = await organizations(session, "first", "second")
        tokens = [await claim(session, first_org), await claim(session, second_org)]
        await session.commit()
    zone.set_txt(record_name(DOMAIN), *tokens)

    async def verify_second() -> str:
        async with session_factory() as session:
            try:
                await verify(session, second_org, nameserver)
            except Conflict as refused:
                # Still usable: the refusal rolled back to its SAVEPOINT only.
                assert await holders(session) == {first_org: True, second_org: False}
                await session.rollback()
                return refused.detail
            await session.commit()
            return "verified"

    async with session_factory() as first:
        assert (await verify(first, first_org, nameserver)).is_verified
        second = asyncio.create_task(verify_second())
        await asyncio.sleep(1.0)
        assert not second.done(), "the second verification must wait for the first"
        await first.commit()
    assert (await second).startswith(f"Another organization has already verified {DOMAIN}")
    async with session_factory() as session:
        assert await holders(session) == {first_org: True, second_org: False}


async def test_two_adds_at_the_cap_at_once_leave_the_cap(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """One place left: the second add waits for the organization lock the first holds, then
    counts its row and is refused."""
    async with session_factory() as session:
        (org,) = await organizations(session, "acme")
        for i in range(MAX_PENDING_DOMAINS - 1):
            await claim(session, org, f"d{i}.example")
        await session.commit()

    second = await second_waits_for_first(
        session_factory,
        lambda session: claim(session, org, "first.example"),
        lambda session: claim(session, org, "second.example"),
        settle=1.0,
    )
    assert "waiting to be verified" in second
    async with session_factory() as session:
        pending = select(func.count(OrganizationDomain.id)).where(
            OrganizationDomain.organization_id == org, OrganizationDomain.verified_at.is_(None)
        )
        assert await session.scalar(pending) == MAX_PENDING_DOMAINS


async def test_one_domain_added_to_one_organization_twice_at_once_leaves_one(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with session_factory() as session:
        (org,) = await organizations(session, "acme")

    second = await second_waits_for_first(
        session_factory, lambda session: claim(session, org), lambda session: claim(session, org)
    )
    assert "already claimed by this organization" in second
    async with session_factory() as session:
        assert await holders(session) == {org: False}


async def test_two_verified_adds_of_one_domain_at_once_leave_one(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """The seed's and operators' add of a verified domain, for two organizations at once: the
    insert's conflict target is the partial unique index, so the second waits for the first and
    inserts nothing, a Conflict rather than an IntegrityError."""
    async with session_factory() as session:
        first_org, second_org = await organizations(session, "first", "second")

    async def add(session: AsyncSession, org: uuid.UUID) -> None:
        await OrganizationService(session=session).add_domain(
            organization_id=org, domain=DOMAIN, actor=SYSTEM, verified=True
        )

    second = await second_waits_for_first(
        session_factory,
        lambda session: add(session, first_org),
        lambda session: add(session, second_org),
    )
    assert "another organization has verified it" in second
    async with session_factory() as session:
        assert await holders(session) == {first_org: True}


async def test_a_tenant_and_an_operator_verifying_one_domain_at_once_leave_one_verified(
    session_factory: async_sessionmaker[AsyncSession], dns: tuple[str, TxtZone]
) -> None:
    """The settings page's verification (OrganizationSettingsService) first, the console's
    second: one rule, in `mark_domain_verified`, whichever path each comes through."""
    nameserver, zone = dns
    async with session_factory() as session:
        tenant_org, console_org = await organizations(session, "tenant", "console")
        tokens = [await claim(session, tenant_org), await claim(session, console_org)]
        [row] = await domain_rows(session, tenant_org)
        domain_id = row.domain.id
        await session.commit()
    zone.set_txt(record_name(DOMAIN), *tokens)

    async def verify_from_settings(session: AsyncSession) -> None:
        organization = await session.get_one(Organization, tenant_org)
        settings = OrganizationSettingsService(session, Caller.system(organization))
        assert (await settings.verify_domain(domain_id, nameserver=nameserver)).is_verified

    second = await second_waits_for_first(
        session_factory,
        verify_from_settings,
        lambda session: verify(session, console_org, nameserver),
        settle=1.0,
    )
    assert second.startswith(f"Another organization has already verified {DOMAIN}")
    async with session_factory() as session:
        assert await holders(session) == {tenant_org: True, console_org: False}


async def test_verifying_a_claim_removed_meanwhile_is_not_found(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with session_factory() as session:
        (org,) = await organizations(session, "acme")
        await claim(session, org)
        await session.commit()
        [row] = await domain_rows(session, org)
        await session.commit()
        async with session_factory() as other:
            await other.execute(
                delete(OrganizationDomain).where(OrganizationDomain.id == row.domain.id)
            )
            await other.commit()
        with pytest.raises(NotFound):
            await mark_domain_verified(session, row.domain)
