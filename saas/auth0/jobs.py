"""Outbox job kinds, and the helpers services use to ask for a sync in their transaction."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from saas.auth0.outbox import enqueue

ORGANIZATION = "organization.sync"
MEMBER = "member.sync"
INVITATION = "invitation.sync"
CONNECTION = "connection.sync"
CONNECTION_DISABLE = "connection.disable"

Session = AsyncSession | async_scoped_session[AsyncSession]


def sync_organization_later(session: Session, organization_id: UUID) -> None:
    enqueue(session, ORGANIZATION, organization_id=organization_id)


def sync_connection_later(session: Session, connection_id: UUID) -> None:
    enqueue(session, CONNECTION, connection_id=connection_id)


def sync_member_later(session: Session, organization_id: UUID, user_id: UUID) -> None:
    enqueue(session, MEMBER, organization_id=organization_id, user_id=user_id)


def sync_invitation_later(
    session: Session, invitation_id: UUID, delete_auth0_ids: list[str] | None = None
) -> None:
    enqueue(
        session, INVITATION, invitation_id=invitation_id, delete_auth0_ids=delete_auth0_ids or []
    )


def disable_connection_later(
    session: Session,
    organization_id: UUID,
    auth0_connection_id: str | None,
    auth0_connection_name: str,
) -> None:
    """Take a connection the organization no longer has off it at Auth0. Without its id (none
    was recorded, though a create may have reached Auth0), the job finds it by name."""
    enqueue(
        session,
        CONNECTION_DISABLE,
        organization_id=organization_id,
        auth0_connection_id=auth0_connection_id,
        auth0_connection_name=auth0_connection_name,
    )
