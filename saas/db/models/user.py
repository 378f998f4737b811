from __future__ import annotations

import datetime

from advanced_alchemy.base import UUIDv7AuditBase
from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import Boolean, Index, String
from sqlalchemy.orm import Mapped, mapped_column

# Indexes that exist on PostgreSQL only; migrations/env.py leaves them out of the model/migration
# comparison on other databases (SQLite has no trigram index and needs none for development).
POSTGRESQL_ONLY = {"dialects": ("postgresql",)}


class User(UUIDv7AuditBase):
    """A person as Auth0 knows them; identity is the Auth0 `sub`, never the email."""

    __tablename__ = "users"
    __table_args__ = (
        # Member lists sort by name or last sign-in, and page by (value, id) cursors: with these
        # a page of a 100,000-member organization seeks to its 25 rows at any depth.
        Index("ix_users_name_id", "name", "id"),
        Index("ix_users_last_login_id", "last_login_at", "id"),
        # Search is a substring match (`ILIKE '%term%'`); trigram indexes answer it without
        # reading every user.
        Index(
            "ix_users_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
            info=POSTGRESQL_ONLY,
        ),
        Index(
            "ix_users_email_trgm",
            "email",
            postgresql_using="gin",
            postgresql_ops={"email": "gin_trgm_ops"},
            info=POSTGRESQL_ONLY,
        ),
    )

    sub: Mapped[str] = mapped_column(String(255), unique=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    picture: Mapped[str | None] = mapped_column(String(2048))
    is_platform_operator: Mapped[bool] = mapped_column(Boolean, default=False)
    last_login_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
