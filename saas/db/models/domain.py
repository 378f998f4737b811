from __future__ import annotations

import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from advanced_alchemy.base import UUIDv7AuditBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

if TYPE_CHECKING:
    from saas.db.models.organization import Organization

# The rows that route sign-ins: at most one per domain.
VERIFIED_PREDICATE = "verified_at IS NOT NULL"


class OrganizationDomain(UUIDv7AuditBase):
    """An email domain claimed by an organization; only verified ones route logins.

    Claiming proves nothing, so a claim blocks no one: several organizations may hold the same
    domain unverified, each with its own token, and the first to publish its TXT record wins.
    Once one has verified it, the partial unique index refuses every other verification (and
    a claim elsewhere is refused up front, see `OrganizationService.add_domain`).
    """

    __tablename__ = "organization_domains"
    __table_args__ = (
        UniqueConstraint("organization_id", "domain", name="uq_organization_domains_org_domain"),
        Index(
            "uq_organization_domains_verified_domain",
            "domain",
            unique=True,
            sqlite_where=text(VERIFIED_PREDICATE),
            postgresql_where=text(VERIFIED_PREDICATE),
        ),
    )

    organization_id: Mapped[UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    # Stored normalized (lowercase, IDNA A-label, no trailing dot): once per organization, and
    # verified by one organization at most.
    domain: Mapped[str] = mapped_column(String(253))
    verified_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    verification_token: Mapped[str] = mapped_column(String(64))

    organization: Mapped[Organization] = relationship(back_populates="domains", lazy="noload")

    @property
    def is_verified(self) -> bool:
        return self.verified_at is not None
