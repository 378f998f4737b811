from __future__ import annotations

import datetime
from uuid import UUID

from advanced_alchemy.base import UUIDv7AuditBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column

OPEN_PREDICATE = "accepted_at IS NULL AND revoked_at IS NULL"


class Invitation(UUIDv7AuditBase):
    """An invitation to join an organization with a role.

    Only a hash of the invitation ticket is stored, so a database leak does not hand out
    working invitation links.
    """

    __tablename__ = "invitations"
    __table_args__ = (
        Index("ix_invitations_org_email", "organization_id", "email"),
        # One open (neither accepted nor revoked) invitation per address and organization,
        # held by the database so that two racing requests cannot both invite. Expiry is not
        # in the predicate (an index cannot read the clock): inviting again closes the expired
        # one first (InvitationService.invite).
        Index(
            "uq_invitations_open_email",
            "organization_id",
            text("lower(email)"),
            unique=True,
            sqlite_where=text(OPEN_PREDICATE),
            postgresql_where=text(OPEN_PREDICATE),
        ),
    )

    organization_id: Mapped[UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16))
    inviter_id: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    auth0_invitation_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime.datetime] = mapped_column(DateTimeUTC(timezone=True))
    accepted_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    revoked_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True))

    def is_pending(self, now: datetime.datetime) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > now

    def status(self, now: datetime.datetime) -> str:
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        return "pending" if self.expires_at > now else "expired"
