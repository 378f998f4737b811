"""Idempotent demo seed: running it twice changes nothing.

It goes through the services, so the same rules (normalized domains, audit events for
memberships) hold for demo data as for everything else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.services import Actor
from saas.db.models import Organization
from saas.demo import data as demo_data
from saas.members.removals import was_removed
from saas.members.services import MembershipService
from saas.organizations.services import DomainStanding, OrganizationService
from saas.users.services import UserService


@dataclass
class SeedReport:
    created: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created)


async def _seed_organization(
    session: AsyncSession, spec: demo_data.DemoOrganization, report: SeedReport
) -> Organization:
    orgs = OrganizationService(session=session)
    actor = Actor.system()
    organization = await orgs.repository.get_one_or_none(slug=spec.slug)
    if organization is None:
        organization = await orgs.create_organization(
            slug=spec.slug,
            display_name=spec.display_name,
            actor=actor,
            default_role=spec.default_role,
            jit_provisioning=spec.jit_provisioning,
            require_sso=spec.require_sso,
            auth0_org_id=spec.auth0_id,
            organization_id=spec.id,
        )
        report.created.append(f"organization {spec.slug}")
    for domain in spec.domains:
        # On the list already (verified or not: left as it is), or verified by another
        # organization (which a seed does not take from it): nothing to add. Another
        # organization's unverified claim is no reason to hold back.
        if await orgs.domain_standing(organization.id, domain) is DomainStanding.FREE:
            await orgs.add_domain(
                organization_id=organization.id, domain=domain, actor=actor, verified=True
            )
            report.created.append(f"domain {domain}")
    connection = spec.connection
    if connection and not await orgs.connection_name_is_taken(connection.name):
        await orgs.add_connection(
            organization_id=organization.id,
            name=connection.name,
            strategy=connection.strategy,
            display_name=connection.display_name,
            auth0_connection_id=connection.auth0_id,
            actor=actor,
        )
        report.created.append(f"connection {connection.name}")
    return organization


async def seed_demo_data(session: AsyncSession) -> SeedReport:
    """Insert whatever of the demo data is missing. The caller commits."""
    report = SeedReport()
    organizations = {
        spec.slug: await _seed_organization(session, spec, report)
        for spec in demo_data.ORGANIZATIONS
    }
    users = UserService(session=session)
    members = MembershipService(session=session)
    for spec in demo_data.USERS:
        user = await users.repository.get_one_or_none(sub=spec.sub)
        if user is None:
            user = await users.upsert_by_sub(sub=spec.sub, email=spec.email, name=spec.name)
            report.created.append(f"user {spec.email}")
        if spec.platform_operator and not user.is_platform_operator:
            user.is_platform_operator = True
            await users.repository.update(user, auto_commit=False)
            report.created.append(f"operator {spec.email}")
        for slug, role in spec.memberships.items():
            organization = organizations[slug]
            # A demo person an administrator removed stays removed: seeding again (every
            # `make run`) restores what is missing from the demo, never undoes a removal.
            if await members.find(organization.id, user.id) is None and not await was_removed(
                session, organization.id, user.id, user.email
            ):
                await members.add(
                    organization_id=organization.id,
                    user_id=user.id,
                    role=role,
                    actor=Actor.system(),
                    via="seed",
                )
                report.created.append(f"membership {spec.email} in {slug} as {role}")
    return report
