"""JSON shapes of Management API resources, field for field as Auth0 documents them."""

from __future__ import annotations

from typing import Any

from saas.devidp.ids import iso8601
from saas.devidp.models import (
    Connection,
    Invitation,
    Organization,
    OrganizationConnection,
    Role,
    User,
)


def organization(org: Organization) -> dict[str, Any]:
    data: dict[str, Any] = {"id": org.id, "name": org.name}
    if org.display_name is not None:
        data["display_name"] = org.display_name
    if org.branding:
        data["branding"] = org.branding
    data["metadata"] = org.metadata_ or {}
    return data


def enabled_connection(link: OrganizationConnection, conn: Connection) -> dict[str, Any]:
    return {
        "connection_id": conn.id,
        "assign_membership_on_login": link.assign_membership_on_login,
        "show_as_button": link.show_as_button,
        "is_signup_enabled": link.is_signup_enabled,
        "connection": {"name": conn.name, "strategy": conn.strategy},
    }


def member(user: User, roles: list[Role] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "user_id": user.user_id,
        "picture": user.picture,
        "name": user.name,
        "email": user.email,
    }
    if roles is not None:
        data["roles"] = [{"id": r.id, "name": r.name} for r in roles]
    return data


def role(r: Role) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "description": r.description}


def invitation(inv: Invitation) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": inv.id,
        "organization_id": inv.organization_id,
        "inviter": {"name": inv.inviter_name},
        "invitee": {"email": inv.invitee_email},
        "invitation_url": inv.invitation_url,
        "created_at": iso8601(inv.created_at),
        "expires_at": iso8601(inv.expires_at),
        "client_id": inv.client_id,
        "app_metadata": inv.app_metadata or {},
        "user_metadata": inv.user_metadata or {},
        "roles": list(inv.roles),
        "ticket_id": inv.ticket_id,
    }
    if inv.connection_id:
        data["connection_id"] = inv.connection_id
    return data


def connection(conn: Connection) -> dict[str, Any]:
    return {
        "id": conn.id,
        "name": conn.name,
        "display_name": conn.display_name or conn.name,
        "strategy": conn.strategy,
        "options": conn.options or {},
        "realms": list(conn.realms or [conn.name]),
        "is_domain_connection": conn.is_domain_connection,
        "enabled_clients": list(conn.enabled_clients),
        "metadata": conn.metadata_ or {},
    }


def user(u: User, strategy: str) -> dict[str, Any]:
    provider, _, provider_user_id = u.user_id.partition("|")
    data: dict[str, Any] = {
        "user_id": u.user_id,
        "email": u.email,
        "email_verified": u.email_verified,
        "name": u.name,
        "nickname": u.email.split("@", 1)[0],
        "picture": u.picture,
        "identities": [
            {
                "connection": u.connection,
                "provider": provider or strategy,
                "user_id": provider_user_id,
                "isSocial": False,
            }
        ],
        "created_at": iso8601(u.created_at),
        "updated_at": iso8601(u.updated_at),
        "logins_count": u.logins_count,
    }
    if u.last_login is not None:
        data["last_login"] = iso8601(u.last_login)
    if u.groups:
        data["groups"] = list(u.groups)  # enterprise IdP attribute, mapped to the profile root
    return data
