"""Audit events are written by the services that make a change, in the same transaction."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from saas.audit.actions import AuditAction
from saas.db.lists import text_search
from saas.db.models import AuditEvent, User
from saas.db.tenant_repository import TenantScopedRepository


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting, and from where. `user_id` is None for the system (seed, CLI, worker)."""

    user_id: UUID | None
    ip_address: str | None = None
    user_agent: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(user_id=None)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit event with the people it names already resolved (no query per row)."""

    event: AuditEvent
    actor: User | None
    target_user: User | None


@dataclass(frozen=True, slots=True)
class AuditCursor:
    """Keyset position: the last row shown, in (created_at, id) descending order."""

    created_at: datetime.datetime
    id: UUID

    def encode(self) -> str:
        return f"{self.created_at.isoformat()}_{self.id}"

    @classmethod
    def decode(cls, value: str | None) -> AuditCursor | None:
        """None for an absent or malformed cursor (which then means "from the newest")."""
        if not value:
            return None
        stamp, _, ident = value.rpartition("_")
        try:
            created_at = datetime.datetime.fromisoformat(stamp)
            if created_at.tzinfo is None:
                created_at = created_at.replace(tzinfo=datetime.UTC)
            return cls(created_at=created_at, id=UUID(ident))
        except ValueError:
            return None


class AuditEventRepository(TenantScopedRepository[AuditEvent]):
    model_type = AuditEvent


class AuditService:
    """An organization's events go through a repository scoped to it; platform events (no
    organization: a failed sign-in, an operator's action) are the only ones written without."""

    def __init__(self, *, session: AsyncSession | async_scoped_session[AsyncSession]) -> None:
        self.session = session

    def repository_for(self, organization_id: UUID) -> AuditEventRepository:
        return AuditEventRepository(session=self.session, organization_id=organization_id)

    async def record(
        self,
        action: AuditAction,
        *,
        actor: Actor,
        organization_id: UUID | None,
        target_type: str | None = None,
        target_id: str | UUID | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEvent:
        # A plain string that merely looks like an action would be written without a label.
        if not isinstance(action, AuditAction):
            raise TypeError(f"audit actions are AuditAction members, not {action!r}")
        event = AuditEvent(
            organization_id=organization_id,
            actor_id=actor.user_id,
            action=action.value,
            target_type=target_type,
            target_id=str(target_id) if target_id is not None else None,
            details=details or {},
            ip_address=actor.ip_address,
            user_agent=(actor.user_agent or "")[:512] or None,
        )
        if organization_id is None:
            self.session.add(event)
            await self.session.flush()
            return event
        return await self.repository_for(organization_id).add(event, auto_commit=False)

    async def page_for_organization(
        self,
        organization_id: UUID,
        *,
        action: str | None = None,
        actor: str | None = None,
        before: AuditCursor | None = None,
        limit: int = 50,
    ) -> tuple[list[AuditEntry], AuditCursor | None]:
        """Newest first, keyset-paginated on (created_at, id). Two queries whatever the page
        size: the events with their actors, then the target users of the page."""
        session = self.session
        statement = (
            self.repository_for(organization_id)
            .statement.add_columns(User)
            .outerjoin(User, User.id == AuditEvent.actor_id)
        )
        if action:
            statement = statement.where(AuditEvent.action == action)
        if actor and actor.strip():
            statement = text_search({"name", "email"}, actor.strip()).append_to_statement(
                statement, User
            )
        if before is not None:
            statement = statement.where(
                or_(
                    AuditEvent.created_at < before.created_at,
                    and_(AuditEvent.created_at == before.created_at, AuditEvent.id < before.id),
                )
            )
        statement = statement.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())
        rows = list((await session.execute(statement.limit(limit + 1))).tuples())
        has_more = len(rows) > limit
        rows = rows[:limit]
        target_ids = set()
        for event, _ in rows:
            if event.target_type == "user" and event.target_id:
                try:
                    target_ids.add(UUID(event.target_id))
                except ValueError:
                    continue
        targets: dict[str, User] = {}
        if target_ids:
            users = await session.execute(select(User).where(User.id.in_(target_ids)))
            targets = {str(user.id): user for user in users.scalars()}
        entries = [
            AuditEntry(
                event=event,
                actor=user,
                target_user=targets.get(event.target_id or "")
                if event.target_type == "user"
                else None,
            )
            for event, user in rows
        ]
        cursor = (
            AuditCursor(created_at=rows[-1][0].created_at, id=rows[-1][0].id)
            if has_more and rows
            else None
        )
        return entries, cursor
