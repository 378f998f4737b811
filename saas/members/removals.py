"""Removals that stick: a person an administrator removed is not added back by just-in-time
provisioning (saas/login/membership.py) until an administrator invites them again.

Each removal leaves a row in `removed_members` (saas/db/models/removed_member.py), written in
the removal's own transaction under the organization's lock; the just-in-time write reads it
under the same lock, so a removal racing a sign-in either lands first and is seen, or lands
after the sign-in's membership exists and removes it. Accepting an invitation deletes the row
in the acceptance's transaction."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from saas.db.models import RemovedMember

Session = AsyncSession | async_scoped_session[AsyncSession]


async def record_removal(session: Session, organization_id: UUID, user_id: UUID) -> None:
    """Remember that this person was removed. Called with the organization's lock held, so
    the look-up and the insert cannot race another removal of the same person."""
    existing = await session.scalar(
        select(RemovedMember.id).where(
            RemovedMember.organization_id == organization_id, RemovedMember.user_id == user_id
        )
    )
    if existing is not None:
        # Removed again after being added some other way: the latest removal counts.
        await session.execute(
            update(RemovedMember)
            .where(RemovedMember.id == existing)
            .values(updated_at=RemovedMember.updated_at)
        )
        return
    session.add(RemovedMember(organization_id=organization_id, user_id=user_id))
    await session.flush()


async def was_removed(session: Session, organization_id: UUID, user_id: UUID) -> bool:
    found = await session.scalar(
        select(RemovedMember.id).where(
            RemovedMember.organization_id == organization_id, RemovedMember.user_id == user_id
        )
    )
    return found is not None


async def forget_removal(session: Session, organization_id: UUID, user_id: UUID) -> None:
    """An administrator let them in again (an invitation accepted)."""
    await session.execute(
        delete(RemovedMember).where(
            RemovedMember.organization_id == organization_id, RemovedMember.user_id == user_id
        )
    )
