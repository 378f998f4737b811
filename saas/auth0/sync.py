"""Outbox job handlers: make Auth0's view of one thing match the app's database.

Each is a `JobHandler` (saas/auth0/outbox.py): `read` copies the current rows into a frozen
value in a short transaction, `push` makes Auth0 match that value with no database session
open, and returns the writes Auth0's answers call for (an id to keep). Because each run reads
the rows as they are, retries, duplicates and reordering converge.

Those writes are made even when the rows changed during the call (saas/auth0/outbox.py), so
they are guarded and expect the row to be gone; where an id was never recorded at all (a
worker stopped between Auth0's answer and its commit), the job that would undo the object
looks it up at Auth0 by what the app put there (app metadata, its name).
"""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from saas.auth0.jobs import (
    AUTH0_SESSION_REVOKE,
    CONNECTION,
    CONNECTION_DISABLE,
    INVITATION,
    MEMBER,
    ORGANIZATION,
    disable_connection_later,
)
from saas.auth0.management import ManagementClient, ManagementError
from saas.auth0.outbox import ATTEMPT_KEY, Apply, JobHandler
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


# ---- organizations ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrganizationState:
    id: UUID
    slug: str
    display_name: str
    auth0_org_id: str | None
    # (Auth0 connection id, assign membership on login) for each connection at Auth0.
    connections: tuple[tuple[str, bool], ...]


async def read_organization(
    session: AsyncSession, payload: dict[str, Any]
) -> OrganizationState | None:
    organization = await session.get(Organization, UUID(payload["organization_id"]))
    if organization is None:
        return None
    connections = await session.execute(
        select(EnterpriseConnection)
        .where(
            EnterpriseConnection.organization_id == organization.id,
            EnterpriseConnection.auth0_connection_id.is_not(None),
        )
        .order_by(EnterpriseConnection.id)
    )
    return OrganizationState(
        id=organization.id,
        slug=organization.slug,
        display_name=organization.display_name,
        auth0_org_id=organization.auth0_org_id,
        connections=tuple(
            (str(c.auth0_connection_id), assigns_membership(organization, c))
            for c in connections.scalars()
        ),
    )


async def push_organization(
    client: ManagementClient, state: OrganizationState | None
) -> Apply | None:
    if state is None:
        return None
    auth0_org_id = state.auth0_org_id
    if auth0_org_id is None:
        auth0_org_id = await client.ensure_organization(state.slug, state.display_name)
    else:
        await client.update_organization(auth0_org_id, state.display_name)
    for connection_id, assign_on_login in state.connections:
        await client.enable_connection(auth0_org_id, connection_id, assign_on_login=assign_on_login)
    if state.auth0_org_id is not None:
        return None
    created = auth0_org_id

    async def keep_auth0_id(session: AsyncSession) -> None:
        await session.execute(
            update(Organization)
            .where(Organization.id == state.id, Organization.auth0_org_id.is_(None))
            .values(auth0_org_id=created)
        )

    return keep_auth0_id


# ---- members ----------------------------------------------------------------------------

# The `sub` of a user a directory created before their first sign-in (saas/scim/services.py).
DIRECTORY_PLACEHOLDER_SUB = "scim|"


@dataclass(frozen=True, slots=True)
class MemberState:
    auth0_org_id: str
    user_sub: str
    role: str | None  # None: not a member (any more)


async def read_member(session: AsyncSession, payload: dict[str, Any]) -> MemberState | None:
    user = await session.get(User, UUID(payload["user_id"]))
    found = (
        await _organization_at_auth0(session, UUID(payload["organization_id"])) if user else None
    )
    if user is None or found is None:
        return None
    if user.sub.startswith(DIRECTORY_PLACEHOLDER_SUB):
        # Provisioned by a directory and not signed in yet: Auth0 has no such user to add
        # (its Management API adds existing users only); they join at their first sign-in.
        return None
    organization, auth0_org_id = found
    role = await session.scalar(
        select(Membership.role).where(
            Membership.organization_id == organization.id, Membership.user_id == user.id
        )
    )
    return MemberState(auth0_org_id=auth0_org_id, user_sub=user.sub, role=role)


async def push_member(client: ManagementClient, state: MemberState | None) -> Apply | None:
    if state is None:
        return None
    if state.role is None:
        try:
            await client.remove_member(state.auth0_org_id, state.user_sub)
        except ManagementError as error:
            if error.status != 404:
                raise
        return None
    await client.add_member(state.auth0_org_id, state.user_sub)
    await client.set_member_roles(state.auth0_org_id, state.user_sub, [state.role])
    return None


# ---- invitations ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvitationState:
    id: UUID
    auth0_org_id: str
    email: str
    role: str
    inviter_name: str
    expires_at: datetime.datetime
    accepted_at: datetime.datetime | None
    revoked_at: datetime.datetime | None
    token_hash: str | None
    auth0_invitation_id: str | None
    # Auth0 invitations this one replaces (a resend), to delete there.
    delete_auth0_ids: tuple[str, ...]
    created_at: datetime.datetime
    # An earlier run of this job may have created it at Auth0 without recording the answer.
    earlier_run: bool

    def is_pending(self, now: datetime.datetime) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > now


async def read_invitation(session: AsyncSession, payload: dict[str, Any]) -> InvitationState | None:
    invitation = await session.get(Invitation, UUID(payload["invitation_id"]))
    if invitation is None:
        return None
    found = await _organization_at_auth0(session, invitation.organization_id)
    if found is None:
        return None
    organization, auth0_org_id = found
    inviter = await session.get(User, invitation.inviter_id) if invitation.inviter_id else None
    return InvitationState(
        id=invitation.id,
        auth0_org_id=auth0_org_id,
        email=invitation.email,
        role=invitation.role,
        inviter_name=(inviter.name or inviter.email) if inviter else organization.display_name,
        expires_at=invitation.expires_at,
        accepted_at=invitation.accepted_at,
        revoked_at=invitation.revoked_at,
        token_hash=invitation.token_hash,
        auth0_invitation_id=invitation.auth0_invitation_id,
        delete_auth0_ids=tuple(str(i) for i in payload.get("delete_auth0_ids", [])),
        created_at=invitation.created_at,
        earlier_run=int(payload.get(ATTEMPT_KEY, 1)) > 1,
    )


# Auth0's clock and ours may differ a little: look a bit further back than the row's birth.
CLOCK_SKEW = datetime.timedelta(minutes=15)


async def _created_unrecorded(
    client: ManagementClient, state: InvitationState
) -> dict[str, Any] | None:
    """What an earlier run created at Auth0 for this invitation without recording it, if
    anything: it can only be newer than the invitation's row."""
    return await client.find_invitation(
        state.auth0_org_id, str(state.id), created_since=state.created_at - CLOCK_SKEW
    )


async def push_invitation(client: ManagementClient, state: InvitationState | None) -> Apply | None:
    if state is None:
        return None
    org_id = state.auth0_org_id
    for auth0_id in state.delete_auth0_ids:
        await client.delete_invitation(org_id, auth0_id)
    now = datetime.datetime.now(datetime.UTC)
    if not state.is_pending(now):
        if state.accepted_at is None:
            open_id = state.auth0_invitation_id
            if open_id is None:
                # Created at Auth0 without its id reaching us (the worker stopped before it
                # recorded it, or the create is still running elsewhere and will run this
                # job again when it records): find it by the id we gave it.
                found = await _created_unrecorded(client, state)
                open_id = str(found["id"]) if found else None
            if open_id is not None:
                await client.delete_invitation(org_id, open_id)
        return None
    if state.auth0_invitation_id is not None:
        return None
    # Auth0's answer is kept on the row (below), so a create is not preceded by a search,
    # which would page through every invitation of the organization (and fail past Auth0's
    # 1,000-record window). Only a run after one that may have reached Auth0 unrecorded
    # looks, among the invitations created since this one.
    created = await _created_unrecorded(client, state) if state.earlier_run else None
    if created is None or created.get("id") in state.delete_auth0_ids:
        created = await client.create_invitation(
            org_id=org_id,
            app_invitation_id=str(state.id),
            inviter_name=state.inviter_name,
            email=state.email,
            role_names=[state.role],
            ttl_seconds=max(60, int((state.expires_at - now).total_seconds())),
        )
    auth0_invitation_id = str(created["id"])
    token_hash = hash_ticket(str(created["ticket_id"]))

    async def keep_ticket(session: AsyncSession) -> None:
        # Also when the invitation was revoked during the call: the job that runs next
        # deletes it at Auth0 by this id.
        await session.execute(
            update(Invitation)
            .where(Invitation.id == state.id, Invitation.auth0_invitation_id.is_(None))
            .values(auth0_invitation_id=auth0_invitation_id, token_hash=token_hash)
        )

    return keep_ticket


# ---- connections ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectionState:
    id: UUID
    organization_id: UUID
    auth0_org_id: str
    name: str
    strategy: str
    display_name: str
    options: dict[str, Any]
    secret_ciphertext: str | None
    domain_aliases: tuple[str, ...]
    assign_on_login: bool
    auth0_connection_id: str | None


async def read_connection(session: AsyncSession, payload: dict[str, Any]) -> ConnectionState | None:
    connection = await session.get(EnterpriseConnection, UUID(payload["connection_id"]))
    if connection is None:
        return None
    found = await _organization_at_auth0(session, connection.organization_id)
    if found is None:
        return None
    organization, auth0_org_id = found
    domains = await session.execute(
        select(OrganizationDomain.domain)
        .where(
            OrganizationDomain.organization_id == organization.id,
            OrganizationDomain.verified_at.is_not(None),
        )
        .order_by(OrganizationDomain.domain)
    )
    return ConnectionState(
        id=connection.id,
        organization_id=organization.id,
        auth0_org_id=auth0_org_id,
        name=connection.auth0_connection_name,
        strategy=connection.strategy,
        display_name=connection.display_name,
        options=dict(connection.options),
        secret_ciphertext=connection.secret_ciphertext,
        domain_aliases=tuple(domains.scalars()),
        assign_on_login=assigns_membership(organization, connection),
        auth0_connection_id=connection.auth0_connection_id,
    )


def signing_cert_for_auth0(value: str) -> str:
    """A SAML connection's `options.signingCert` as Auth0 takes it: the Base64 of the
    certificate's whole PEM text, BEGIN and END lines included. Auth0 docs, Connect Your App
    to SAML Identity Providers: "If you use the Management API, you must convert the file to
    Base64"; Auth0 Community, "options.signingCert format for SAML connections": "The correct
    format is a base64 encoded PEM certificate",
    https://community.auth0.com/t/options-signingcert-format-for-saml-connections/56159.
    Raw PEM is stored by Auth0 as it is and then fails the signature check of responses that
    do not embed the certificate ("The Supported Formats for SAML Connection Signing
    Certificate are not Consistent Between Dashboard and Management API", Auth0 Community,
    https://community.auth0.com/t/the-supported-formats-for-saml-connection-signing-certificate-are-not-consistent-between-dashboard-and-management-api/121425).
    The app keeps the PEM (saas/sso/validation.py); a value Base64 already is left alone."""
    text = value.strip()
    if "-----BEGIN CERTIFICATE-----" not in text:
        return value
    return base64.b64encode((text + "\n").encode()).decode()


def options_for_auth0(strategy: str, options: dict[str, Any]) -> dict[str, Any]:
    sent = dict(options)
    if strategy == "samlp" and isinstance(sent.get("signingCert"), str):
        sent["signingCert"] = signing_cert_for_auth0(sent["signingCert"])
    return sent


async def push_connection(client: ManagementClient, state: ConnectionState | None) -> Apply | None:
    if state is None:
        return None
    options = options_for_auth0(state.strategy, state.options)
    options["domain_aliases"] = list(state.domain_aliases)
    if state.secret_ciphertext:
        options["client_secret"] = decrypt_secret(client.settings, state.secret_ciphertext)
    auth0_connection_id = await client.ensure_connection(
        name=state.name,
        strategy=state.strategy,
        display_name=state.display_name,
        options=options,
        owner=str(state.organization_id),
    )
    await client.enable_connection(
        state.auth0_org_id, auth0_connection_id, assign_on_login=state.assign_on_login
    )

    async def keep_auth0_id(session: AsyncSession) -> None:
        exists = await session.scalar(
            select(EnterpriseConnection.id).where(EnterpriseConnection.id == state.id)
        )
        if exists is None:
            # Deleted while Auth0 created or enabled it, perhaps before its id was known
            # here: take it off the organization at Auth0 too.
            disable_connection_later(
                session, state.organization_id, auth0_connection_id, state.name
            )
        elif auth0_connection_id != state.auth0_connection_id:
            await session.execute(
                update(EnterpriseConnection)
                .where(
                    EnterpriseConnection.id == state.id,
                    # Only over the id this job read: never over a newer job's answer.
                    EnterpriseConnection.auth0_connection_id.is_not_distinct_from(
                        state.auth0_connection_id
                    ),
                )
                .values(auth0_connection_id=auth0_connection_id)
            )

    return keep_auth0_id


# ---- disabling a connection -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DisableState:
    organization_id: UUID
    auth0_org_id: str
    auth0_connection_id: str | None
    auth0_connection_name: str | None


async def read_disable(session: AsyncSession, payload: dict[str, Any]) -> DisableState | None:
    organization = await session.get(Organization, UUID(payload["organization_id"]))
    if organization is None or organization.auth0_org_id is None:
        return None
    auth0_id = payload.get("auth0_connection_id")
    name = payload.get("auth0_connection_name")
    same = [
        column == value
        for column, value in (
            (EnterpriseConnection.auth0_connection_id, auth0_id),
            (EnterpriseConnection.auth0_connection_name, name),
        )
        if value
    ]
    if not same:
        return None
    # The organization has that connection again (deleted, then saved anew under the same
    # name): its own sync job keeps it enabled, this one must not take it away.
    in_use = await session.scalar(
        select(EnterpriseConnection.id)
        .where(EnterpriseConnection.organization_id == organization.id, or_(*same))
        .limit(1)
    )
    if in_use is not None:
        return None
    return DisableState(
        organization_id=organization.id,
        auth0_org_id=organization.auth0_org_id,
        auth0_connection_id=str(auth0_id) if auth0_id else None,
        auth0_connection_name=str(name) if name else None,
    )


async def push_disable(client: ManagementClient, state: DisableState | None) -> Apply | None:
    if state is None:
        return None
    connection_id = state.auth0_connection_id
    if connection_id is None and state.auth0_connection_name:
        found = await client.connection_by_name(state.auth0_connection_name)
        # Only one this organization created (as ensure_connection records it).
        owner = str(((found or {}).get("metadata") or {}).get("saas_organization_id"))
        if found is not None and owner == str(state.organization_id):
            connection_id = str(found["id"])
    if connection_id is not None:
        await client.disable_connection(state.auth0_org_id, connection_id)
    return None


# ---- revoking an Auth0 session --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RevokeSessionState:
    sid: str


async def read_session_revoke(
    session: AsyncSession, payload: dict[str, Any]
) -> RevokeSessionState | None:
    # Nothing in the database decides it: the app session it came from is already ended.
    sid = payload.get("sid")
    return RevokeSessionState(sid) if isinstance(sid, str) and sid else None


async def push_session_revoke(
    client: ManagementClient, state: RevokeSessionState | None
) -> Apply | None:
    if state is not None:
        await client.revoke_session(state.sid)
    return None


HANDLERS: dict[str, JobHandler[Any]] = {
    ORGANIZATION: JobHandler(read_organization, push_organization),
    MEMBER: JobHandler(read_member, push_member),
    INVITATION: JobHandler(read_invitation, push_invitation),
    CONNECTION: JobHandler(read_connection, push_connection),
    CONNECTION_DISABLE: JobHandler(read_disable, push_disable),
    AUTH0_SESSION_REVOKE: JobHandler(read_session_revoke, push_session_revoke),
}
