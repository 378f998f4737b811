"""Step 5 of the login pipeline: does this verified identity get into this organization?

In order: an existing membership; an invitation being accepted (same email, pending); just-in-time
provisioning (the org allows it and the email's verified domain is the org's). Before any of
them, the require-SSO rule: a user whose email domain belongs to an organization that requires
SSO must have come through that organization's enterprise connection.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.services import Actor
from saas.db.locks import lock_organization
from saas.db.models import Membership, Organization, OrganizationDomain, User
from saas.errors import DomainError
from saas.invitations.services import InvitationService
from saas.login.discovery import connection_for
from saas.login.errors import EmailNotVerified, InvitationInvalid, NotAMember, SsoRequired
from saas.members.services import MembershipService
from saas.organizations.domains import email_domain


def connection_of_sub(sub: str) -> str | None:
    """Auth0 user ids of enterprise connections read `<strategy>|<connection>|<id>`."""
    parts = sub.split("|")
    return parts[1] if len(parts) >= 3 else None


async def enforce_required_sso(db: AsyncSession, user: User) -> None:
    domain = email_domain(user.email)
    stmt = (
        select(Organization)
        .join(OrganizationDomain, OrganizationDomain.organization_id == Organization.id)
        .where(OrganizationDomain.domain == domain, OrganizationDomain.verified_at.is_not(None))
    )
    home = (await db.execute(stmt)).scalar_one_or_none()
    if home is None or not home.require_sso:
        return
    connection = await connection_for(db, home)
    if connection is None or connection_of_sub(user.sub) != connection.auth0_connection_name:
        raise SsoRequired


async def _domain_belongs_to(db: AsyncSession, organization: Organization, email: str) -> bool:
    stmt = select(OrganizationDomain.id).where(
        OrganizationDomain.organization_id == organization.id,
        OrganizationDomain.domain == email_domain(email),
        OrganizationDomain.verified_at.is_not(None),
    )
    return (await db.execute(stmt)).first() is not None


async def resolve_membership(
    db: AsyncSession,
    *,
    user: User,
    organization: Organization,
    invitation_ticket: str | None,
    email_verified: bool,
    actor: Actor,
) -> Membership:
    members = MembershipService(session=db)
    if invitation_ticket:
        try:
            return await InvitationService(session=db).accept(
                organization_id=organization.id, ticket=invitation_ticket, user=user, actor=actor
            )
        except DomainError as error:
            raise InvitationInvalid from error
    existing = await members.find(organization.id, user.id)
    if existing is not None:
        return existing
    if organization.jit_provisioning and await _domain_belongs_to(db, organization, user.email):
        # The invitation ticket proves the mailbox; just-in-time needs the IdP's word for it.
        if not email_verified:
            raise EmailNotVerified
        # Two tabs signing the same person in race here: under the organization's lock the
        # second waits for the first and then finds its membership, rather than adding another.
        await lock_organization(db, organization.id)
        if (existing := await members.find(organization.id, user.id)) is not None:
            return existing
        return await members.add(
            organization_id=organization.id,
            user_id=user.id,
            role=organization.default_role,
            actor=actor,
            via="just_in_time",
        )
    raise NotAMember
