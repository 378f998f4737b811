from __future__ import annotations

import datetime
from typing import Any
from uuid import UUID

from advanced_alchemy.base import UUIDv7AuditBase
from advanced_alchemy.types import DateTimeUTC, JsonB
from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from saas.db.models._enums import OutboxStatus


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class OutboxJob(UUIDv7AuditBase):
    """A pending Auth0 Management API operation, written in the same transaction as the
    change it mirrors and drained by the outbox worker."""

    __tablename__ = "outbox_jobs"
    __table_args__ = (
        Index("ix_outbox_jobs_due", "status", "next_attempt_at"),
        Index("ix_outbox_jobs_target", "organization_id", "target_type", "target_id"),
    )

    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonB, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime.datetime] = mapped_column(
        DateTimeUTC(timezone=True), default=_utcnow
    )
    # What the job is for, so a page can show the sync state of the object it shows with one
    # indexed query (saas/auth0/sync_state.py). No foreign key: a job outlives a deleted
    # connection or invitation (it takes it off Auth0) and keeps its history.
    organization_id: Mapped[UUID | None] = mapped_column(default=None)
    target_type: Mapped[str | None] = mapped_column(String(32), default=None)
    target_id: Mapped[UUID | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Set while a worker runs the job (see saas/auth0/outbox.py): only the holder of the
    # token may record the result, and once `leased_until` passes another worker may retry.
    lease_token: Mapped[str | None] = mapped_column(String(32), default=None)
    leased_until: Mapped[datetime.datetime | None] = mapped_column(
        DateTimeUTC(timezone=True), default=None
    )
    done_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
