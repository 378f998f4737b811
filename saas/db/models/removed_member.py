from __future__ import annotations

from uuid import UUID

from advanced_alchemy.base import UUIDv7AuditBase
from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column


class RemovedMember(UUIDv7AuditBase):
    """A person an administrator removed from an organization (`created_at`: when).

    Just-in-time provisioning refuses them (saas/login/membership.py): without this row their
    next sign-in through a verified domain of the organization would make them a member again,
    undoing the removal. Accepting a new invitation, an administrator's explicit act, deletes
    it in the same transaction (saas/invitations/services.py). Self-contained on purpose: no
    column of `memberships` changes, so other membership states can be added beside it."""

    __tablename__ = "removed_members"
    __table_args__ = (
        UniqueConstraint("organization_id", "user_id", name="uq_removed_members_org_user"),
        Index("ix_removed_members_org_email", "organization_id", "email"),
    )

    organization_id: Mapped[UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The address too (normalized): the same person signing in through another connection has
    # another `sub`, so another user row, and must be refused all the same.
    # None for a user whose address is not one (a directory's placeholder sent without one).
    email: Mapped[str | None] = mapped_column(String(320))
