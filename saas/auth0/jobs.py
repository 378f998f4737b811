"""Outbox job kinds, and the helpers services use to ask for a sync in their transaction.

Each job records the organization and the object it is for (`Target`), so the page where the
object was changed can show its sync state (saas/auth0/sync_state.py)."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from saas.auth0.outbox import Target, enqueue

ORGANIZATION = "organization.sync"
MEMBER = "member.sync"
INVITATION = "invitation.sync"
CONNECTION = "connection.sync"
CONNECTION_DISABLE = "connection.disable"
AUTH0_SESSION_REVOKE = "auth0_session.revoke"

# Target types: what a page asks the sync state of.
ORGANIZATION_TARGET = "organization"
CONNECTION_TARGET = "connection"
INVITATION_TARGET = "invitation"
MEMBER_TARGET = "member"
# A person's Auth0 sessions (no organization: an Auth0 session spans them all); the target id
# is the user's, so "Your sessions" shows their revocations (saas/account/revocations.py).
AUTH0_SESSION_TARGET = "auth0_session"

Session = AsyncSession | async_scoped_session[AsyncSession]


def sync_organization_later(session: Session, organization_id: UUID) -> None:
    target = Target(organization_id, ORGANIZATION_TARGET, organization_id)
    enqueue(session, ORGANIZATION, target=target, organization_id=organization_id)


def sync_connection_later(session: Session, organization_id: UUID, connection_id: UUID) -> None:
    target = Target(organization_id, CONNECTION_TARGET, connection_id)
    enqueue(session, CONNECTION, target=target, connection_id=connection_id)


def sync_member_later(session: Session, organization_id: UUID, user_id: UUID) -> None:
    target = Target(organization_id, MEMBER_TARGET, user_id)
    enqueue(session, MEMBER, target=target, organization_id=organization_id, user_id=user_id)


def sync_invitation_later(
    session: Session,
    organization_id: UUID,
    invitation_id: UUID,
    delete_auth0_ids: list[str] | None = None,
) -> None:
    enqueue(
        session,
        INVITATION,
        target=Target(organization_id, INVITATION_TARGET, invitation_id),
        invitation_id=invitation_id,
        delete_auth0_ids=delete_auth0_ids or [],
    )


def disable_connection_later(
    session: Session,
    organization_id: UUID,
    auth0_connection_id: str | None,
    auth0_connection_name: str,
) -> None:
    """Take a connection the organization no longer has off it at Auth0. Without its id (none
    was recorded, though a create may have reached Auth0), the job finds it by name. Its
    target is the organization: the connection it was for is gone from the app."""
    enqueue(
        session,
        CONNECTION_DISABLE,
        target=Target(organization_id, ORGANIZATION_TARGET, organization_id),
        organization_id=organization_id,
        auth0_connection_id=auth0_connection_id,
        auth0_connection_name=auth0_connection_name,
    )


def revoke_auth0_session_later(
    session: Session, user_id: UUID, auth0_sid: str, *, device: str
) -> None:
    """Revoke, after the commit, the Auth0 session an app session came from, so the browser
    that held it cannot sign in again without a password. `device` names it for the person."""
    enqueue(
        session,
        AUTH0_SESSION_REVOKE,
        target=Target(None, AUTH0_SESSION_TARGET, user_id),
        user_id=user_id,
        sid=auth0_sid,
        device=device[:100],
    )
