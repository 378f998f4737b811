from __future__ import annotations

from typing import TYPE_CHECKING

from advanced_alchemy.base import UUIDv7AuditBase
from sqlalchemy import Boolean, CheckConstraint, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from saas.db.models._enums import OrganizationStatus, Role

if TYPE_CHECKING:
    from saas.db.models.connection import EnterpriseConnection
    from saas.db.models.domain import OrganizationDomain


# The longest a policy may name: thirty days. The platform's own timeouts bound it further.
MAX_POLICY_SECONDS = 30 * 24 * 3600


class Organization(UUIDv7AuditBase):
    """A tenant. Its slug doubles as the Auth0 organization `name`."""

    __tablename__ = "organizations"
    __table_args__ = (
        # The security policy's bounds, held by the database whatever writes the row; the
        # service also keeps each within the platform's own timeouts (Settings), which the
        # database cannot read.
        CheckConstraint(
            "session_idle_timeout_seconds IS NULL OR session_idle_timeout_seconds "
            f"BETWEEN 60 AND {MAX_POLICY_SECONDS}",
            name="session_idle_timeout_range",
        ),
        CheckConstraint(
            "session_absolute_timeout_seconds IS NULL OR session_absolute_timeout_seconds "
            f"BETWEEN 300 AND {MAX_POLICY_SECONDS}",
            name="session_absolute_timeout_range",
        ),
        CheckConstraint(
            "session_idle_timeout_seconds IS NULL OR session_absolute_timeout_seconds IS NULL "
            "OR session_idle_timeout_seconds <= session_absolute_timeout_seconds",
            name="session_idle_within_absolute",
        ),
    )

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
    # The security policy its owners set (saas.organizations.security). Sign-ins to the
    # organization need multi-factor authentication; sessions in it end sooner than the
    # platform's (null: the platform's timeout).
    require_mfa: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    session_idle_timeout_seconds: Mapped[int | None] = mapped_column(Integer, default=None)
    session_absolute_timeout_seconds: Mapped[int | None] = mapped_column(Integer, default=None)

    domains: Mapped[list[OrganizationDomain]] = relationship(
        back_populates="organization", lazy="noload", cascade="all, delete-orphan"
    )
    connections: Mapped[list[EnterpriseConnection]] = relationship(
        back_populates="organization", lazy="noload", cascade="all, delete-orphan"
    )

    @property
    def is_active(self) -> bool:
        return self.status == OrganizationStatus.ACTIVE
