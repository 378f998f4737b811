"""What every full tenant page's layout needs, shared by the features' controllers."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from saas.login.current_user import memberships_of
from saas.tenancy.context import TenantContext


async def page_context(
    tenant: TenantContext, db: AsyncSession, **extra: object
) -> dict[str, object]:
    """What every tenant page's layout needs: the tenant, the user, the org switcher."""
    return {
        "tenant": tenant,
        "user": tenant.user,
        "memberships": await memberships_of(db, tenant.user),
        **extra,
    }
