"""The one tenant-context resolver: organization from the path, member from the session.

Every `/o/<slug>/...` route depends on it. A non-member gets 404 (no disclosure that the
organization exists); a suspended organization is refused; an organization other than the
session's active one needs a fresh authorization for it (switching is never a browser claim).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from litestar import Request
from sqlalchemy.ext.asyncio import AsyncSession

from saas.auth.context import active_organization_id, load_current_user
from saas.auth.permissions import Permission, Role, has_permission
from saas.db.models import Membership, Organization, User
from saas.errors import DomainError, Forbidden, NotFound
from saas.members.services import MembershipService
from saas.organizations.services import OrganizationRepository


class SignInRequired(DomainError):
    """Browsers are sent to `location`; API clients get 401."""

    status_code = 401
    title = "Sign-in required"

    def __init__(self, location: str) -> None:
        super().__init__("Sign in to continue.")
        self.location = location


@dataclass(frozen=True, slots=True)
class TenantContext:
    organization: Organization
    membership: Membership
    user: User

    @property
    def role(self) -> Role:
        return Role(self.membership.role)

    def can(self, permission: Permission | str) -> bool:
        return has_permission(self.role, permission)


def _login_location(slug: str, request: Request[Any, Any, Any], *, silent: bool) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    suffix = "&silent=true" if silent else ""
    return f"/o/{quote(slug)}/login?next={quote(target, safe='')}{suffix}"


async def resolve_tenant(
    slug: str, request: Request[Any, Any, Any], db: AsyncSession
) -> TenantContext:
    user = await load_current_user(request, db)
    if user is None:
        raise SignInRequired(_login_location(slug, request, silent=False))
    organization = await OrganizationRepository(session=db).get_one_or_none(slug=slug)
    membership = (
        await MembershipService(session=db).find(organization.id, user.id) if organization else None
    )
    if organization is None or membership is None:
        raise NotFound("There is nothing here, or you do not have access to it.")
    if not organization.is_active:
        raise Forbidden("This organization is suspended. Contact your administrator.")
    if active_organization_id(request) != organization.id:
        raise SignInRequired(_login_location(slug, request, silent=True))
    return TenantContext(organization=organization, membership=membership, user=user)
