"""The one role -> permission table (DESIGN.md, "Roles and permissions").

Guards ask for a permission, never for a role name. The dev IdP reads the same table so
that the `permissions` claim of its access tokens matches what the app enforces.
"""

from __future__ import annotations

from enum import StrEnum

from saas.db.models import Role

__all__ = [
    "ROLE_PERMISSIONS",
    "ROLE_RANK",
    "Permission",
    "Role",
    "has_permission",
    "outranks_or_equals",
    "permissions_for",
]


class Permission(StrEnum):
    ORG_READ = "org:read"
    MEMBERS_READ = "members:read"
    PROJECTS_WRITE = "projects:write"
    MEMBERS_INVITE = "members:invite"
    MEMBERS_MANAGE = "members:manage"
    ORG_MANAGE = "org:manage"
    AUDIT_READ = "audit:read"
    ORG_DELETE = "org:delete"
    OWNERSHIP = "ownership"


_VIEWER = frozenset({Permission.ORG_READ, Permission.MEMBERS_READ})
_MEMBER = _VIEWER | {Permission.PROJECTS_WRITE}
_ADMIN = _MEMBER | {
    Permission.MEMBERS_INVITE,
    Permission.MEMBERS_MANAGE,
    Permission.ORG_MANAGE,
    Permission.AUDIT_READ,
}
_OWNER = _ADMIN | {Permission.ORG_DELETE, Permission.OWNERSHIP}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(_OWNER),
    Role.ADMIN: frozenset(_ADMIN),
    Role.MEMBER: frozenset(_MEMBER),
    Role.VIEWER: _VIEWER,
}

# Higher rank = more power. Used for "an admin cannot grant a role above their own".
ROLE_RANK: dict[Role, int] = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


def permissions_for(role: Role | str) -> frozenset[Permission]:
    return ROLE_PERMISSIONS[Role(role)]


def has_permission(role: Role | str, permission: Permission | str) -> bool:
    return Permission(permission) in ROLE_PERMISSIONS[Role(role)]


def outranks_or_equals(actor: Role | str, target: Role | str) -> bool:
    return ROLE_RANK[Role(actor)] >= ROLE_RANK[Role(target)]
