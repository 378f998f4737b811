"""Tenant pages under /o/<slug>/."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from saas.login.current_user import memberships_of
from saas.tenancy.context import TenantContext
from saas.tenancy.guards import provide_tenant, requires
from saas.tenancy.permissions import Permission


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


class OrganizationHomeController(Controller):
    path = "/o/{slug:str}"
    include_in_schema = False
    dependencies = {"tenant": Provide(provide_tenant)}

    @get("/", name="org.home", guards=[requires(Permission.ORG_READ)])
    async def home(
        self, tenant: NamedDependency[TenantContext], db_session: NamedDependency[AsyncSession]
    ) -> Template:
        return Template("pages/org_home.html", context=await page_context(tenant, db_session))
