from __future__ import annotations

from uuid import UUID

from advanced_alchemy.base import UUIDv7AuditBase
from sqlalchemy import ForeignKey, Index, String, text
from sqlalchemy.orm import Mapped, mapped_column


class Project(UUIDv7AuditBase):
    """The sample tenant-scoped resource: copy this pattern for your own tenant data."""

    __tablename__ = "projects"
    __table_args__ = (
        # "Roadmap" and "roadmap" are one name: the service compares names without case, and
        # so does the database, or two racing requests could create both. ProjectService's
        # INSERT ... ON CONFLICT names these same expressions.
        Index("uq_projects_org_lower_name", "organization_id", text("lower(name)"), unique=True),
    )

    organization_id: Mapped[UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(120))
    created_by_id: Mapped[UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
