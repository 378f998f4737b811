from __future__ import annotations

from enum import StrEnum


class OrganizationStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class ConnectionStrategy(StrEnum):
    """The Auth0 connection strategies an organization may sign in through: the one list the
    services, the CLI, the operator console and the dev IdP accept."""

    SAMLP = "samlp"
    OIDC = "oidc"
    WAAD = "waad"
    OKTA = "okta"
    GOOGLE_APPS = "google-apps"
    AUTH0 = "auth0"  # the password database


class Role(StrEnum):
    """A member's role in one organization; what each may do is `saas.tenancy.permissions`."""

    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"
