"""What a tenant route knows about its caller: the organization, the membership, the user.

Resolved once per request by `saas.tenancy.resolver` and cached on the connection.
"""

from __future__ import annotations

from dataclasses import dataclass

from saas.db.models import Membership, Organization, User
from saas.errors import DomainError
from saas.tenancy.authority import ActingMember
from saas.tenancy.permissions import Permission, Role, has_permission

TENANT_STATE_KEY = "tenant"
# One answer for an organization that does not exist and for one the caller may not see.
NOT_VISIBLE = "There is nothing here, or you do not have access to it."


class SignInRequired(DomainError):
    """Browsers are sent to `location`; API clients get 401 with a Bearer challenge."""

    status_code = 401
    title = "Sign-in required"

    def __init__(self, location: str, detail: str = "Sign in to continue.") -> None:
        super().__init__(detail)
        self.location = location


@dataclass(frozen=True, slots=True)
class TenantContext:
    organization: Organization
    membership: Membership
    user: User
    # Set for API requests: the access token's `permissions` claim.
    token_permissions: frozenset[str] | None = None

    @property
    def role(self) -> Role:
        return Role(self.membership.role)

    @property
    def acting(self) -> ActingMember:
        """Who writes: services re-read this member's role inside the write's transaction."""
        return ActingMember(user_id=self.user.id, token_permissions=self.token_permissions)

    def can(self, permission: Permission | str) -> bool:
        allowed_by_role = has_permission(self.role, permission)
        if self.token_permissions is None:
            return allowed_by_role
        return allowed_by_role and str(permission) in self.token_permissions
