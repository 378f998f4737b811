"""Step 5 of the login pipeline: does this verified identity get into this organization?

In order: an existing membership; an invitation being accepted (same email, pending); the
organization's directory (SCIM) entry for this person, made before their first sign-in; just-in-time
provisioning (the org allows it, the email's verified domain is the org's, and no administrator
removed the person: saas/members/removals.py). Before any of
them, the require-SSO rule: a user whose email domain belongs to an organization that requires
SSO must have come through that organization's enterprise connection, as the verified ID
token's connection claim says (`Settings.auth0_connection_claim`).
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.services import Actor
from saas.db.locks import lock_organization
from saas.db.models import Membership, Organization, OrganizationDomain, User
from saas.errors import DomainError, Forbidden
from saas.invitations.services import InvitationService
from saas.login.discovery import connection_for
from saas.login.errors import (
    DeactivatedByDirectory,
    EmailNotVerified,
    InvitationForSomeoneElse,
    InvitationInvalid,
    NotAMember,
    RemovedFromOrganization,
    SsoRequired,
)
from saas.members.removals import was_removed
from saas.members.services import MembershipService
from saas.organizations.domains import email_domain
from saas.scim.services import claim_directory_identity

logger = structlog.get_logger("saas.login.membership")


def signed_in_connection(claims: dict[str, Any], claim: str) -> str | None:
    """The connection the person signed in through, from the verified ID token.

    Not from the user id: Auth0 documents user ids as `<provider>|<id in the provider>`
    (https://auth0.com/docs/users/identify-users), and only some strategies put the
    connection name in between. Google Workspace ids read
    `google-apps|<email or Google id>` (the connection option `map_user_id_to_id` in Auth0's
    SDK types picks which), Microsoft Entra ID ids `waad|<oid or sub>`
    (https://auth0.com/docs/customize/integrations/migrate-office365-connections-to-windows-azure-ad).
    And a database connection's id can be anything after `auth0|` (custom databases and the
    Management API set it), so `auth0|acme-saml|x` names no SAML connection at all.

    The tenant's post-login Action sets this claim to `event.connection.name`
    (https://auth0.com/docs/customize/actions/reference/post-login/post-login-event-object),
    and Auth0 signs it into the ID token with everything else: it is as trustworthy as `sub`.
    """
    value = claims.get(claim)
    return value if isinstance(value, str) and value else None


async def enforce_required_sso(
    db: AsyncSession, user: User, *, connection_name: str | None, claim: str
) -> None:
    """Refuse a person whose email domain belongs to a require-SSO organization unless they
    came through that organization's enterprise connection.

    Without the connection claim nothing proves the way in, so the answer is no (fail closed):
    a missing Action locks such people out visibly, where guessing from the user id could let
    a password account named like an enterprise one in."""
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
    if connection is not None and connection_name == connection.auth0_connection_name:
        return
    if connection_name is None:
        # For the operator, not the person: the tenant is missing the post-login Action.
        logger.warning(
            "sso_connection_claim_missing",
            claim=claim,
            organization=home.slug,
            hint="add the post-login Action from the README (Auth0 tenant: sign-in and sign-out)",
        )
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
        except Forbidden as error:
            raise InvitationForSomeoneElse(
                f"You signed in as {user.email}, but this invitation was sent to a different "
                "email address. Sign out, then open the invitation link again and sign in as "
                "the invited person."
            ) from error
        except DomainError as error:
            raise InvitationInvalid from error
    existing = await members.find(organization.id, user.id)
    if existing is not None:
        return existing
    # A person the organization's directory provisioned: their entry (made before they first
    # signed in) is theirs now; one it deactivated does not come back by signing in.
    entry = await claim_directory_identity(
        db, organization, user, email_verified=email_verified, actor=actor
    )
    if entry is not None:
        if (existing := await members.find(organization.id, user.id)) is not None:
            return existing
        raise DeactivatedByDirectory
    if organization.jit_provisioning and await _domain_belongs_to(db, organization, user.email):
        # The invitation ticket proves the mailbox; just-in-time needs the IdP's word for it.
        if not email_verified:
            raise EmailNotVerified
        # Two tabs signing the same person in race here: under the organization's lock the
        # second waits for the first and then finds its membership, rather than adding another.
        await lock_organization(db, organization.id)
        if (existing := await members.find(organization.id, user.id)) is not None:
            return existing
        # Read under the same lock a removal holds while it writes this row: a removal that
        # committed first is seen here, one that comes after finds this membership to remove.
        if await was_removed(db, organization.id, user.id, user.email):
            raise RemovedFromOrganization.from_organization(organization.display_name)
        return await members.add(
            organization_id=organization.id,
            user_id=user.id,
            role=organization.default_role,
            actor=actor,
            via="just_in_time",
        )
    raise NotAMember
