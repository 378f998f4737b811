"""Outbox job handlers: make Auth0's view of one thing match the app's database.

Each reads the current rows when it runs, so retries, duplicates and reordering converge.
"""

from __future__ import annotations

import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.auth0.jobs import CONNECTION, CONNECTION_DISABLE, INVITATION, MEMBER, ORGANIZATION
from saas.auth0.management import ManagementClient, ManagementError
from saas.db.models import (
    EnterpriseConnection,
    Invitation,
    Membership,
    Organization,
    OrganizationDomain,
    User,
)
from saas.invitations.tickets import hash_ticket
from saas.sso.secrets import decrypt_secret


def assigns_membership(organization: Organization, connection: EnterpriseConnection) -> bool:
    # Just-in-time provisioning only works if Auth0 lets non-members through this connection.
    return connection.assign_membership_on_login or organization.jit_provisioning


async def _organization_at_auth0(
    session: AsyncSession, organization_id: UUID
) -> tuple[Organization, str] | None:
    """The organization a job is about and its Auth0 id (None if it is gone). Until the
    organization's own sync has given it an Auth0 id, wait for that job rather than fail."""
    organization = await session.get(Organization, organization_id)
    if organization is None:
        return None
    if organization.auth0_org_id is None:
        raise _not_yet("the organization")
    return organization, organization.auth0_org_id


def _not_yet(what: str) -> ManagementError:
    # The organization's own sync job has not run yet: wait for it rather than fail.
    return ManagementError(f"{what} is not at Auth0 yet", retry_after=2.0)


async def sync_organization(
    session: AsyncSession, client: ManagementClient, payload: dict[str, Any]
) -> None:
    organization = await session.get(Organization, UUID(payload["organization_id"]))
    if organization is None:
        return
    if organization.auth0_org_id is None:
        organization.auth0_org_id = await client.ensure_organization(
            organization.slug, organization.display_name
        )
    else:
        await client.update_organization(organization.auth0_org_id, organization.display_name)
    connections = await session.execute(
        select(EnterpriseConnection).where(
            EnterpriseConnection.organization_id == organization.id,
            EnterpriseConnection.auth0_connection_id.is_not(None),
        )
    )
    for connection in connections.scalars():
        await client.enable_connection(
            organization.auth0_org_id,
            str(connection.auth0_connection_id),
            assign_on_login=assigns_membership(organization, connection),
        )


async def sync_member(
    session: AsyncSession, client: ManagementClient, payload: dict[str, Any]
) -> None:
    user = await session.get(User, UUID(payload["user_id"]))
    found = (
        await _organization_at_auth0(session, UUID(payload["organization_id"])) if user else None
    )
    if user is None or found is None:
        return
    organization, auth0_org_id = found
    membership = (
        await session.execute(
            select(Membership).where(
                Membership.organization_id == organization.id, Membership.user_id == user.id
            )
        )
    ).scalar_one_or_none()
    if membership is None:
        try:
            await client.remove_member(auth0_org_id, user.sub)
        except ManagementError as error:
            if error.status != 404:
                raise
        return
    await client.add_member(auth0_org_id, user.sub)
    await client.set_member_roles(auth0_org_id, user.sub, [membership.role])


async def sync_invitation(
    session: AsyncSession, client: ManagementClient, payload: dict[str, Any]
) -> None:
    invitation = await session.get(Invitation, UUID(payload["invitation_id"]))
    if invitation is None:
        return
    found = await _organization_at_auth0(session, invitation.organization_id)
    if found is None:
        return
    organization, auth0_org_id = found
    stale = [str(i) for i in payload.get("delete_auth0_ids", [])]
    for auth0_id in stale:
        await client.delete_invitation(auth0_org_id, auth0_id)
    now = datetime.datetime.now(datetime.UTC)
    if not invitation.is_pending(now):
        if invitation.auth0_invitation_id and invitation.accepted_at is None:
            await client.delete_invitation(auth0_org_id, invitation.auth0_invitation_id)
        return
    if invitation.auth0_invitation_id is not None:
        return
    # After a crash between Auth0's answer and our commit, the invitation exists already.
    created = await client.find_invitation(auth0_org_id, str(invitation.id))
    if created is None or created.get("id") in stale:
        inviter = await session.get(User, invitation.inviter_id) if invitation.inviter_id else None
        created = await client.create_invitation(
            org_id=auth0_org_id,
            app_invitation_id=str(invitation.id),
            inviter_name=(inviter.name or inviter.email) if inviter else organization.display_name,
            email=invitation.email,
            role_names=[invitation.role],
            ttl_seconds=max(60, int((invitation.expires_at - now).total_seconds())),
        )
    invitation.auth0_invitation_id = str(created["id"])
    invitation.token_hash = hash_ticket(str(created["ticket_id"]))


async def sync_connection(
    session: AsyncSession, client: ManagementClient, payload: dict[str, Any]
) -> None:
    connection = await session.get(EnterpriseConnection, UUID(payload["connection_id"]))
    if connection is None:
        return
    found = await _organization_at_auth0(session, connection.organization_id)
    if found is None:
        return
    organization, auth0_org_id = found
    options = dict(connection.options)
    domains = await session.execute(
        select(OrganizationDomain.domain).where(
            OrganizationDomain.organization_id == organization.id,
            OrganizationDomain.verified_at.is_not(None),
        )
    )
    options["domain_aliases"] = list(domains.scalars())
    if connection.secret_ciphertext:
        options["client_secret"] = decrypt_secret(client.settings, connection.secret_ciphertext)
    connection.auth0_connection_id = await client.ensure_connection(
        name=connection.auth0_connection_name,
        strategy=connection.strategy,
        display_name=connection.display_name,
        options=options,
        owner=str(organization.id),
    )
    await client.enable_connection(
        auth0_org_id,
        connection.auth0_connection_id,
        assign_on_login=assigns_membership(organization, connection),
    )


async def disable_connection(
    session: AsyncSession, client: ManagementClient, payload: dict[str, Any]
) -> None:
    organization = await session.get(Organization, UUID(payload["organization_id"]))
    if organization is None or organization.auth0_org_id is None:
        return
    await client.disable_connection(organization.auth0_org_id, str(payload["auth0_connection_id"]))


HANDLERS = {
    ORGANIZATION: sync_organization,
    MEMBER: sync_member,
    INVITATION: sync_invitation,
    CONNECTION: sync_connection,
    CONNECTION_DISABLE: disable_connection,
}
