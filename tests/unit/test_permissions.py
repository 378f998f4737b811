"""The role table must equal DESIGN.md's, cell by cell."""

from __future__ import annotations

import pytest

from saas.tenancy.permissions import Permission, Role, has_permission, outranks_or_equals

P = Permission
EXPECTED = {
    P.ORG_READ: {"owner", "admin", "member", "viewer"},
    P.MEMBERS_READ: {"owner", "admin", "member", "viewer"},
    P.PROJECTS_WRITE: {"owner", "admin", "member"},
    P.MEMBERS_INVITE: {"owner", "admin"},
    P.MEMBERS_MANAGE: {"owner", "admin"},
    P.ORG_MANAGE: {"owner", "admin"},
    P.AUDIT_READ: {"owner", "admin"},
    P.ORG_DELETE: {"owner"},
    P.OWNERSHIP: {"owner"},
}


@pytest.mark.parametrize("permission", list(Permission))
@pytest.mark.parametrize("role", list(Role))
def test_role_permission_cell(role: Role, permission: Permission) -> None:
    assert has_permission(role, permission) is (role.value in EXPECTED[permission])


def test_rank_order() -> None:
    assert outranks_or_equals(Role.OWNER, Role.ADMIN)
    assert outranks_or_equals(Role.ADMIN, Role.ADMIN)
    assert not outranks_or_equals(Role.ADMIN, Role.OWNER)
    assert not outranks_or_equals(Role.VIEWER, Role.MEMBER)
