from __future__ import annotations

import pytest
from advanced_alchemy.base import metadata_registry
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.services import Actor
from saas.db.models import EnterpriseConnection, Membership, Organization, OrganizationDomain, User
from saas.demo import data as demo_data
from saas.demo.seed import seed_demo_data
from saas.errors import Conflict, InvalidInput
from saas.members.services import MembershipService
from saas.organizations.services import OrganizationService
from saas.tenancy.authority import ActingMember

SYSTEM = Actor.system()


async def test_one_domain_routes_to_one_organization(session: AsyncSession) -> None:
    """A pending claim no longer blocks another organization (it proves nothing: migration
    0010); once one organization has verified a domain, no other may claim it."""
    service = OrganizationService(session=session)
    acme = await service.create_organization(slug="acme", display_name="Acme", actor=SYSTEM)
    globex = await service.create_organization(slug="globex", display_name="Globex", actor=SYSTEM)
    initech = await service.create_organization(
        slug="initech", display_name="Initech", actor=SYSTEM
    )
    record = await service.add_domain(organization_id=acme.id, domain="ACME.example.", actor=SYSTEM)
    assert record.domain == "acme.example"
    assert not record.is_verified
    other = await service.add_domain(organization_id=globex.id, domain="acme.example", actor=SYSTEM)
    assert other.id != record.id
    await service.add_domain(
        organization_id=initech.id, domain="initech.example", actor=SYSTEM, verified=True
    )
    with pytest.raises(Conflict):
        await service.add_domain(organization_id=globex.id, domain="initech.example", actor=SYSTEM)
    await session.commit()
    # The database refuses a second verified row too, whatever code path tries.
    with pytest.raises(IntegrityError):
        await session.execute(
            insert(OrganizationDomain).values(
                id=globex.id,
                organization_id=globex.id,
                domain="initech.example",
                verification_token="x",
                verified_at=func.now(),
                created_at=func.now(),
                updated_at=func.now(),
            )
        )


@pytest.mark.parametrize("slug", ["Acme", "-acme", "acme-", "a" * 51, "ac me", "ácme", ""])
async def test_slugs_follow_auth0_organization_name_rules(session: AsyncSession, slug: str) -> None:
    with pytest.raises(InvalidInput):
        await OrganizationService(session=session).create_organization(
            slug=slug, display_name="X", actor=SYSTEM
        )


async def test_duplicate_slug_is_a_conflict(session: AsyncSession) -> None:
    service = OrganizationService(session=session)
    await service.create_organization(slug="acme", display_name="Acme", actor=SYSTEM)
    with pytest.raises(Conflict):
        await service.create_organization(slug="acme", display_name="Other", actor=SYSTEM)


async def _row_counts(session: AsyncSession) -> dict[str, int]:
    counts = {}
    for table in metadata_registry.get(None).sorted_tables:
        counts[table.name] = int(await session.scalar(select(func.count()).select_from(table)) or 0)
    return counts


async def test_seed_matches_design_and_is_idempotent(session: AsyncSession) -> None:
    first = await seed_demo_data(session)
    await session.commit()
    assert first.changed
    before = await _row_counts(session)
    second = await seed_demo_data(session)
    await session.commit()
    assert not second.changed
    assert await _row_counts(session) == before

    orgs = {o.slug: o for o in (await session.execute(select(Organization))).scalars()}
    assert set(orgs) == {"acme", "globex", "initech"}
    domains = {d.domain: d for d in (await session.execute(select(OrganizationDomain))).scalars()}
    assert domains["acme.example"].organization_id == orgs["acme"].id
    assert domains["acme.example"].is_verified
    assert domains["globex.example"].organization_id == orgs["globex"].id
    connections = {
        c.auth0_connection_name: c
        for c in (await session.execute(select(EnterpriseConnection))).scalars()
    }
    assert connections["acme-saml"].strategy == "samlp"
    assert connections["globex-oidc"].strategy == "oidc"
    roles = {
        (email, slug): role
        for email, slug, role in await session.execute(
            select(User.email, Organization.slug, Membership.role)
            .join(Membership, Membership.user_id == User.id)
            .join(Organization, Organization.id == Membership.organization_id)
        )
    }
    for user in demo_data.USERS:
        for slug, role in user.memberships.items():
            assert roles[(user.email, slug)] == role
    olivia = (
        await session.execute(select(User).where(User.email == "olivia@ops.example"))
    ).scalar_one()
    assert olivia.is_platform_operator


async def test_seed_is_not_stopped_by_a_pending_claim_of_a_demo_domain(
    session: AsyncSession,
) -> None:
    """Someone claimed acme.example (unverified) before the seed ran: acme still gets it
    verified, the claim stays as it was, and a second run changes nothing."""
    squatter = await OrganizationService(session=session).create_organization(
        slug="squatter", display_name="Squatter", actor=SYSTEM
    )
    await OrganizationService(session=session).add_domain(
        organization_id=squatter.id, domain="acme.example", actor=SYSTEM
    )
    await session.commit()
    assert (await seed_demo_data(session)).changed
    await session.commit()
    assert not (await seed_demo_data(session)).changed
    await session.commit()
    rows = await session.execute(
        select(Organization.slug, OrganizationDomain.verified_at)
        .join(Organization, Organization.id == OrganizationDomain.organization_id)
        .where(OrganizationDomain.domain == "acme.example")
    )
    assert {slug: verified_at is not None for slug, verified_at in rows} == {
        "acme": True,
        "squatter": False,
    }


async def test_seeding_again_does_not_undo_a_removal(session: AsyncSession) -> None:
    """`make run` seeds at every start: a demo person an administrator removed stays removed."""
    await seed_demo_data(session)
    await session.commit()
    acme = (
        await session.execute(select(Organization).where(Organization.slug == "acme"))
    ).scalar_one()
    people = {user.email: user for user in (await session.execute(select(User))).scalars()}
    alice, bob = people["alice@acme.example"], people["bob@acme.example"]
    members = MembershipService(session=session)
    bobs = await members.find(acme.id, bob.id)
    assert bobs is not None
    await members.remove(
        organization_id=acme.id,
        membership_id=bobs.id,
        actor=Actor(user_id=alice.id),
        authority=ActingMember(alice.id),
    )
    await session.commit()

    again = await seed_demo_data(session)
    await session.commit()
    assert not again.changed
    assert await members.find(acme.id, bob.id) is None
