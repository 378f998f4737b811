from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

from advanced_alchemy.base import UUIDv7AuditBase
from sqlalchemy import Boolean, ForeignKey, Index, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

if TYPE_CHECKING:
    from saas.db.models.organization import Organization
    from saas.db.models.user import User


class Membership(UUIDv7AuditBase):
    """A user's role in one organization. `created_at` is when they joined."""

    __tablename__ = "memberships"
    # Each member-list sort reads its page from an index that ends in the tie-breaker
    # (see saas/db/keyset.py): by role, by join date.
    __table_args__ = (
        UniqueConstraint("organization_id", "user_id", name="uq_memberships_org_user"),
        Index("ix_memberships_org_role", "organization_id", "role", "id"),
        Index("ix_memberships_org_created", "organization_id", "created_at", "id"),
    )

    organization_id: Mapped[UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    # Provisioned by the organization's directory (SCIM): the directory removes it, and sets
    # its role where one of the person's groups maps to one (saas/scim/services.py).
    directory_managed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    user: Mapped[User] = relationship(lazy="noload")
    organization: Mapped[Organization] = relationship(lazy="noload")
