"""Directory sync (SCIM 2.0): each organization's bearer tokens, the people and groups its own
identity provider pushes, which role each group maps to, and the refusals the IdP was sent.

A directory user is the SCIM resource (its attributes as the IdP sent them, in `attributes`);
the access it gives is the membership it keeps in step (saas/scim/services.py): an inactive
directory user has no membership, so a deactivation ends access like a removal does.
"""

from __future__ import annotations

import datetime
from typing import Any
from uuid import UUID

from advanced_alchemy.base import UUIDv7AuditBase
from advanced_alchemy.types import DateTimeUTC, JsonB
from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column


class ScimToken(UUIDv7AuditBase):
    """A SCIM bearer token of one organization: only its SHA-256 is kept (saas/scim/tokens.py)."""

    __tablename__ = "scim_tokens"

    organization_id: Mapped[UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The token's last characters, so an admin can tell which one an IdP holds.
    hint: Mapped[str] = mapped_column(String(8))
    created_by_id: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # The role of the member who created (or last rotated) the token, when they did: the
    # token's directory writes act with at most this authority (and at most the role that
    # member holds at the time of the write). None: made by the platform itself (seed, CLI).
    created_by_role: Mapped[str | None] = mapped_column(String(16))
    last_used_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    rotated_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    revoked_at: Mapped[datetime.datetime | None] = mapped_column(DateTimeUTC(timezone=True))

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class DirectoryUser(UUIDv7AuditBase):
    """A person the organization's directory provisioned: SCIM `id` is this row's id."""

    __tablename__ = "directory_users"
    __table_args__ = (
        # userName is unique without case (RFC 7643 §4.1.1), externalId as the IdP sends it; one
        # directory identity per person per organization. The database holds each, so two
        # racing creations cannot both succeed.
        UniqueConstraint("organization_id", "user_name_key", name="uq_directory_users_user_name"),
        UniqueConstraint("organization_id", "external_id", name="uq_directory_users_external_id"),
        UniqueConstraint("organization_id", "user_id", name="uq_directory_users_user"),
        Index("ix_directory_users_org_email", "organization_id", "email"),
    )

    organization_id: Mapped[UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    user_name: Mapped[str] = mapped_column(String(255))
    user_name_key: Mapped[str] = mapped_column(String(255))
    external_id: Mapped[str | None] = mapped_column(String(255))
    # The primary (else first) email, normalized: what filters on emails.value compare.
    email: Mapped[str | None] = mapped_column(String(320))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The SCIM attributes the IdP sent (core User and the enterprise extension), as stored.
    attributes: Mapped[dict[str, Any]] = mapped_column(JsonB, default=dict)


class DirectoryGroup(UUIDv7AuditBase):
    """A group the directory pushed; `role`, set by the organization's admins, is the role its
    members get (the highest of their groups' wins)."""

    __tablename__ = "directory_groups"
    __table_args__ = (
        UniqueConstraint(
            "organization_id", "display_name_key", name="uq_directory_groups_display_name"
        ),
        UniqueConstraint("organization_id", "external_id", name="uq_directory_groups_external_id"),
    )

    organization_id: Mapped[UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    display_name: Mapped[str] = mapped_column(String(255))
    display_name_key: Mapped[str] = mapped_column(String(255))
    external_id: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str | None] = mapped_column(String(16))


class DirectoryGroupMember(UUIDv7AuditBase):
    __tablename__ = "directory_group_members"
    __table_args__ = (
        UniqueConstraint("group_id", "directory_user_id", name="uq_directory_group_members"),
    )

    organization_id: Mapped[UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    group_id: Mapped[UUID] = mapped_column(ForeignKey("directory_groups.id", ondelete="CASCADE"))
    directory_user_id: Mapped[UUID] = mapped_column(
        ForeignKey("directory_users.id", ondelete="CASCADE"), index=True
    )
    # The member's `display` as the directory sent it, given back as sent.
    display: Mapped[str | None] = mapped_column(String(255))


class DirectorySyncError(UUIDv7AuditBase):
    """A SCIM request the app refused, for the Directory sync page's "recent errors"."""

    __tablename__ = "directory_sync_errors"
    __table_args__ = (
        Index("ix_directory_sync_errors_org_created", "organization_id", "created_at"),
    )

    organization_id: Mapped[UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE")
    )
    token_id: Mapped[UUID | None] = mapped_column(ForeignKey("scim_tokens.id", ondelete="SET NULL"))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(255))
    status: Mapped[int] = mapped_column(Integer)
    scim_type: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(500))
