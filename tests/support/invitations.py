"""Invitations made the way the system (not a member) makes them, for a test's setup."""

from __future__ import annotations

import datetime
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.services import Actor
from saas.db.models import Invitation
from saas.invitations.services import InvitationService
from saas.tenancy.permissions import Role


async def invite_as_system(
    session: AsyncSession,
    organization_id: UUID,
    email: str,
    *,
    role: Role = Role.MEMBER,
    ttl: datetime.timedelta = datetime.timedelta(days=7),
) -> tuple[Invitation, str]:
    """An invitation through the service (its rules, its outbox job), by no member; the caller
    commits."""
    return await InvitationService(session=session).invite(
        organization_id=organization_id,
        email=email,
        role=role,
        actor=Actor.system(),
        authority=None,
        ttl=ttl,
    )
