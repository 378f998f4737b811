from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from advanced_alchemy.base import UUIDv7AuditBase
from advanced_alchemy.types import JsonB
from sqlalchemy import Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

if TYPE_CHECKING:
    from saas.db.models.organization import Organization


class EnterpriseConnection(UUIDv7AuditBase):
    """The Auth0 connection an organization's users sign in through (SAML, OIDC, ...)."""

    __tablename__ = "enterprise_connections"

    organization_id: Mapped[UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    auth0_connection_name: Mapped[str] = mapped_column(String(128), unique=True)
    auth0_connection_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Auth0 strategy: a `ConnectionStrategy` value.
    strategy: Mapped[str] = mapped_column(String(32))
    display_name: Mapped[str] = mapped_column(String(255))
    # Non-secret connection options (metadata URL, discovery URL, client id, ...).
    options: Mapped[dict[str, Any]] = mapped_column(JsonB, default=dict)
    # A client secret (OIDC), Fernet-encrypted with a key derived from SECRET_KEY; never shown.
    secret_ciphertext: Mapped[str | None] = mapped_column(Text, default=None)
    # Whether signing in through this connection makes the user a member (Auth0's setting).
    assign_membership_on_login: Mapped[bool] = mapped_column(Boolean, default=False)

    organization: Mapped[Organization] = relationship(back_populates="connections", lazy="noload")
