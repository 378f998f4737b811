"""Per-organization write serialization for invariants that span rows (the last owner)."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from saas.db.models import Organization


async def lock_organization(
    session: AsyncSession | async_scoped_session[AsyncSession], organization_id: UUID
) -> None:
    """Hold the organization's row lock until the transaction ends.

    PostgreSQL: SELECT ... FOR NO KEY UPDATE, so a second transaction that wants the same lock
    waits and then reads the first one's committed rows. Not FOR UPDATE: that also blocks the
    key-share lock every insert referencing the organization takes for its foreign key, and a
    write that holds a member's row (saas/tenancy/authority.py) would deadlock with a removal of
    that member holding this lock. SQLite has no row locks; a no-op UPDATE takes its database
    write lock instead, which serializes writers the same way.
    """
    if session.get_bind().dialect.name == "postgresql":
        stmt = (
            select(Organization.id)
            .where(Organization.id == organization_id)
            .with_for_update(key_share=True)
        )
        await session.execute(stmt)
    else:
        await session.execute(
            update(Organization)
            .where(Organization.id == organization_id)
            .values(updated_at=Organization.updated_at)
        )
