"""Audit events are written by the services that make a change, in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

from saas.audit.actions import AuditAction
from saas.db.keyset import Cursor, InvalidCursor, SortKey
from saas.db.lists import text_search
from saas.db.models import AuditEvent, User
from saas.db.tenant_repository import TenantScopedRepository


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting, and from where. `user_id` is None for the system (seed, CLI, worker)."""

    user_id: UUID | None
    ip_address: str | None = None
    user_agent: str | None = None
    # Who acted when no person did: "directory sync (Okta)". Kept in the event's details.
    label: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(user_id=None)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit event with the people it names already resolved (no query per row)."""

    event: AuditEvent
    actor: User | None
    target_user: User | None


# The log reads newest first, on (created_at, id), paged by the keyset module's cursor.
AUDIT_SORT = "created"
AUDIT_ORDER = SortKey(
    AuditEvent.created_at, AuditEvent.id, lambda row: (row[0].created_at, row[0].id)
)


def audit_cursor(token: str | None) -> Cursor | None:
    """The position a "load more" link carries; None ("from the newest") for no cursor, one
    that does not decode, or one made for another list."""
    if not token:
        return None
    try:
        cursor = Cursor.decode(token)
        AUDIT_ORDER.check(cursor, AUDIT_SORT, descending=True)
    except InvalidCursor:
        return None
    return cursor


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
        details = dict(details or {})
        if actor.label and actor.user_id is None:
            details.setdefault("actor", actor.label)
        event = AuditEvent(
            organization_id=organization_id,
            actor_id=actor.user_id,
            action=action.value,
            target_type=target_type,
            target_id=str(target_id) if target_id is not None else None,
            details=details,
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
        before: Cursor | None = None,
        limit: int = 50,
    ) -> tuple[list[AuditEntry], Cursor | None]:
        """Newest first, keyset-paginated on (created_at, id): `before` is the cursor of the
        last row shown (`InvalidCursor` if it is not one of this list's). Two queries whatever
        the page size: the events with their actors, then the target users of the page."""
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
            AUDIT_ORDER.check(before, AUDIT_SORT, descending=True)
            # One range: the sort column is never NULL.
            statement = statement.where(*AUDIT_ORDER.after(before, descending=True))
        statement = statement.order_by(*AUDIT_ORDER.order_by(descending=True))
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
            AUDIT_ORDER.cursor(AUDIT_SORT, descending=True, row=rows[-1])
            if has_more and rows
            else None
        )
        return entries, cursor


class OrganizationAuditLog:
    """One organization's audit log, as the tenant routes read it (bound to the request's
    organization by `saas.services`)."""

    def __init__(self, service: AuditService, organization_id: UUID) -> None:
        self.service = service
        self.organization_id = organization_id

    async def page(
        self,
        *,
        action: str | None = None,
        actor: str | None = None,
        before: Cursor | None = None,
        limit: int = 50,
    ) -> tuple[list[AuditEntry], Cursor | None]:
        return await self.service.page_for_organization(
            self.organization_id, action=action, actor=actor, before=before, limit=limit
        )
