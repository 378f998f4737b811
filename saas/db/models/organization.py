from __future__ import annotations

from typing import TYPE_CHECKING

from advanced_alchemy.base import UUIDv7AuditBase
from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from saas.db.models._enums import OrganizationStatus, Role

if TYPE_CHECKING:
    from saas.db.models.connection import EnterpriseConnection
    from saas.db.models.domain import OrganizationDomain


class Organization(UUIDv7AuditBase):
    """A tenant. Its slug doubles as the Auth0 organization `name`."""

    __tablename__ = "organizations"

    slug: Mapped[str] = mapped_column(String(50), unique=True)
    display_name: Mapped[str] = mapped_column(String(255))
    # Null until the outbox has created the organization at Auth0.
    auth0_org_id: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    status: Mapped[str] = mapped_column(String(16), default=OrganizationStatus.ACTIVE.value)
    require_sso: Mapped[bool] = mapped_column(Boolean, default=False)
    default_role: Mapped[str] = mapped_column(String(16), default=Role.MEMBER.value)
    jit_provisioning: Mapped[bool] = mapped_column(Boolean, default=False)
    # Kept by MembershipService.add/remove in the membership's own transaction, so the members
    # page shows "100,000 members" without counting 100,000 rows on every view.
    member_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    domains: Mapped[list[OrganizationDomain]] = relationship(
        back_populates="organization", lazy="noload", cascade="all, delete-orphan"
    )
    connections: Mapped[list[EnterpriseConnection]] = relationship(
        back_populates="organization", lazy="noload", cascade="all, delete-orphan"
    )

    @property
    def is_active(self) -> bool:
        return self.status == OrganizationStatus.ACTIVE
