from __future__ import annotations

import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from advanced_alchemy.base import UUIDv7AuditBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

if TYPE_CHECKING:
    from saas.db.models.organization import Organization


class OrganizationDomain(UUIDv7AuditBase):
    """An email domain claimed by one organization; only verified ones route logins."""

    __tablename__ = "organization_domains"

    organization_id: Mapped[UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    # Stored normalized (lowercase, IDNA A-label, no trailing dot); globally unique.
    domain: Mapped[str] = mapped_column(String(253), unique=True)
    verified_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    verification_token: Mapped[str] = mapped_column(String(64))

    organization: Mapped[Organization] = relationship(back_populates="domains", lazy="noload")

    @property
    def is_verified(self) -> bool:
        return self.verified_at is not None
