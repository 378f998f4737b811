"""Home-realm discovery: which organization and connection an email address signs in through.

Only verified domains route. The answer for an unknown domain is "the default login", the same
shape as for a known one, so the response does not reveal whether an account exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.db.models import EnterpriseConnection, Organization, OrganizationDomain
from saas.organizations.domains import email_domain


@dataclass(frozen=True, slots=True)
class LoginRoute:
    organization: Organization | None
    connection: EnterpriseConnection | None


DEFAULT_ROUTE = LoginRoute(organization=None, connection=None)


async def connection_for(
    session: AsyncSession, organization: Organization
) -> EnterpriseConnection | None:
    stmt = (
        select(EnterpriseConnection)
        .where(EnterpriseConnection.organization_id == organization.id)
        .where(EnterpriseConnection.strategy != "auth0")
        .order_by(EnterpriseConnection.created_at)
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def route_email(session: AsyncSession, email: str) -> LoginRoute:
    """Raises InvalidInput for a malformed address; otherwise always answers."""
    domain = email_domain(email)
    stmt = (
        select(Organization)
        .join(OrganizationDomain, OrganizationDomain.organization_id == Organization.id)
        .where(OrganizationDomain.domain == domain, OrganizationDomain.verified_at.is_not(None))
    )
    organization = (await session.execute(stmt)).scalar_one_or_none()
    if organization is None:
        return DEFAULT_ROUTE
    return LoginRoute(
        organization=organization, connection=await connection_for(session, organization)
    )
