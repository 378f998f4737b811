"""The dev IdP's own tables.

Deliberately a separate ``DeclarativeBase`` with its own ``MetaData``: the app's models use
advanced-alchemy's shared registry, which Alembic reads for migrations, and the stand-in for
an external system must never leak tables into the app's schema. Times are stored as epoch
seconds (floats) so SQLite round-trips them without time-zone surprises.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class DevIdpBase(DeclarativeBase):
    metadata = MetaData()


class Client(DevIdpBase):
    """A registered application (Auth0 "client")."""

    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_secret: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    app_type: Mapped[str] = mapped_column(String(40))  # regular_web | non_interactive
    callbacks: Mapped[list[str]] = mapped_column(JSON, default=list)
    allowed_logout_urls: Mapped[list[str]] = mapped_column(JSON, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    organization_usage: Mapped[str] = mapped_column(String(10), default="deny")
    initiate_login_uri: Mapped[str | None] = mapped_column(String(500), nullable=True)


class ClientGrant(DevIdpBase):
    """Which API (audience) a client may call with client_credentials, and with which scopes."""

    __tablename__ = "client_grants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    audience: Mapped[str] = mapped_column(String(500))
    scope: Mapped[list[str]] = mapped_column(JSON, default=list)


class Connection(DevIdpBase):
    __tablename__ = "connections"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    strategy: Mapped[str] = mapped_column(String(40))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    realms: Mapped[list[str]] = mapped_column(JSON, default=list)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    is_domain_connection: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled_clients: Mapped[list[str]] = mapped_column(JSON, default=list)


class Role(DevIdpBase):
    __tablename__ = "roles"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    # Permissions granted for the app's API audience (Auth0 RBAC "role permissions").
    audience: Mapped[str] = mapped_column(String(500))
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)


class Organization(DevIdpBase):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(50), primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    branding: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float)


class OrganizationConnection(DevIdpBase):
    __tablename__ = "organization_connections"

    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    connection_id: Mapped[str] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True
    )
    assign_membership_on_login: Mapped[bool] = mapped_column(Boolean, default=False)
    show_as_button: Mapped[bool] = mapped_column(Boolean, default=True)
    is_signup_enabled: Mapped[bool] = mapped_column(Boolean, default=False)


class User(DevIdpBase):
    __tablename__ = "users"

    user_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    email_verified: Mapped[bool] = mapped_column(Boolean, default=True)
    name: Mapped[str] = mapped_column(String(200))
    picture: Mapped[str] = mapped_column(String(500), default="")
    connection: Mapped[str] = mapped_column(String(128))
    password_hash: Mapped[str | None] = mapped_column(Text, nullable=True)
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    last_login: Mapped[float | None] = mapped_column(Float, nullable=True)
    logins_count: Mapped[int] = mapped_column(Integer, default=0)


class Membership(DevIdpBase):
    __tablename__ = "memberships"

    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.user_id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[float] = mapped_column(Float)


class MemberRole(DevIdpBase):
    __tablename__ = "member_roles"

    organization_id: Mapped[str] = mapped_column(String(50), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    role_id: Mapped[str] = mapped_column(
        ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    )


class Invitation(DevIdpBase):
    __tablename__ = "invitations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    organization_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    ticket_id: Mapped[str] = mapped_column(String(64), unique=True)
    inviter_name: Mapped[str] = mapped_column(String(300))
    invitee_email: Mapped[str] = mapped_column(String(320))
    client_id: Mapped[str] = mapped_column(String(64))
    connection_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    app_metadata: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    user_metadata: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    invitation_url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)


class IdpSession(DevIdpBase):
    """The browser's single sign-on session at the IdP (cookie ``devidp_session``)."""

    __tablename__ = "idp_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the `sid` claim
    cookie_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(String(300))
    connection: Mapped[str] = mapped_column(String(128))
    auth_time: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)


class LoginTransaction(DevIdpBase):
    """A validated /authorize request waiting for the user to sign in (Auth0's `state`)."""

    __tablename__ = "login_transactions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    # Set once the user has authenticated but still has to pick an organization.
    authenticated_user_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    completed: Mapped[bool] = mapped_column(Boolean, default=False)


class AuthorizationCode(DevIdpBase):
    __tablename__ = "authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(Text)
    user_id: Mapped[str] = mapped_column(String(300))
    session_id: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(Text)
    audience: Mapped[str | None] = mapped_column(String(500), nullable=True)
    nonce: Mapped[str | None] = mapped_column(Text, nullable=True)
    organization_id: Mapped[str | None] = mapped_column(String(50), nullable=True)
    code_challenge: Mapped[str | None] = mapped_column(String(128), nullable=True)
    auth_time: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Everything issued from this code shares a family, so a replay can revoke it all.
    family_id: Mapped[str] = mapped_column(String(64))


class TokenFamily(DevIdpBase):
    __tablename__ = "token_families"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class RefreshToken(DevIdpBase):
    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(ForeignKey("token_families.id"), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(300))
    session_id: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(Text)
    audience: Mapped[str | None] = mapped_column(String(500), nullable=True)
    organization_id: Mapped[str | None] = mapped_column(String(50), nullable=True)
    auth_time: Mapped[float] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)
    rotated_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class AccessTokenRecord(DevIdpBase):
    """Issued user access tokens, by hash, so /userinfo can honour family revocation."""

    __tablename__ = "access_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(ForeignKey("token_families.id"), index=True)
    user_id: Mapped[str] = mapped_column(String(300))
    scope: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[float] = mapped_column(Float)


class MailboxMessage(DevIdpBase):
    __tablename__ = "mailbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)


class MfaEnrollment(DevIdpBase):
    """A user's confirmed one-time-password authenticator (TOTP, RFC 6238), as Auth0's `otp`
    factor. Its own table, so an existing dev IdP database gains it (create_all adds tables,
    never columns)."""

    __tablename__ = "mfa_enrollments"

    user_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    secret: Mapped[str] = mapped_column(String(64))  # base32, shown once at enrollment
    confirmed_at: Mapped[float] = mapped_column(Float)
    # The last 30-second time step whose code was accepted: a code is good once.
    last_step: Mapped[int] = mapped_column(Integer, default=0)


class MfaCode(DevIdpBase):
    """An authorization code issued after a multi-factor challenge in its own transaction:
    its ID token carries `amr: ["mfa"]` and the multi-factor `acr`."""

    __tablename__ = "mfa_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[float] = mapped_column(Float)
