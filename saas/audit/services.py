"""Audit events are written by the services that make a change, in the same transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import SQLAlchemyAsyncRepositoryService

from saas.db.models import AuditEvent


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting, and from where. `user_id` is None for the system (seed, CLI, worker)."""

    user_id: UUID | None
    ip_address: str | None = None
    user_agent: str | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(user_id=None)


class AuditEventRepository(SQLAlchemyAsyncRepository[AuditEvent]):
    model_type = AuditEvent


class AuditService(SQLAlchemyAsyncRepositoryService[AuditEvent, AuditEventRepository]):
    repository_type = AuditEventRepository

    async def record(
        self,
        action: str,
        *,
        actor: Actor,
        organization_id: UUID | None,
        target_type: str | None = None,
        target_id: str | UUID | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEvent:
        event = AuditEvent(
            organization_id=organization_id,
            actor_id=actor.user_id,
            action=action,
            target_type=target_type,
            target_id=str(target_id) if target_id is not None else None,
            details=details or {},
            ip_address=actor.ip_address,
            user_agent=(actor.user_agent or "")[:512] or None,
        )
        return await self.repository.add(event, auto_commit=False)
