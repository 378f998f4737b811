from __future__ import annotations

import datetime

from advanced_alchemy.base import UUIDv7AuditBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import Boolean, Index, String
from sqlalchemy.orm import Mapped, mapped_column


class User(UUIDv7AuditBase):
    """A person as Auth0 knows them; identity is the Auth0 `sub`, never the email."""

    __tablename__ = "users"
    # Member lists sort by name or last sign-in; with these, a page of a 100,000-member
    # organization reads its 25 rows in order instead of sorting everyone.
    __table_args__ = (
        Index("ix_users_name_id", "name", "id"),
        Index("ix_users_last_login_at", "last_login_at"),
    )

    sub: Mapped[str] = mapped_column(String(255), unique=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    picture: Mapped[str | None] = mapped_column(String(2048))
    is_platform_operator: Mapped[bool] = mapped_column(Boolean, default=False)
    last_login_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
