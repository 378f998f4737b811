"""Tenant pages under /o/<slug>/."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from saas.auth.context import memberships_of
from saas.auth.tenant import TenantContext, resolve_tenant


async def provide_tenant(
    slug: FromPath[str], request: Request[Any, Any, Any], db_session: NamedDependency[AsyncSession]
) -> TenantContext:
    return await resolve_tenant(slug, request, db_session)


class OrganizationHomeController(Controller):
    path = "/o/{slug:str}"
    include_in_schema = False
    dependencies = {"tenant": Provide(provide_tenant)}

    @get("/", name="org.home")
    async def home(
        self, tenant: NamedDependency[TenantContext], db_session: NamedDependency[AsyncSession]
    ) -> Template:
        return Template(
            "pages/org_home.html",
            context={
                "tenant": tenant,
                "user": tenant.user,
                "memberships": await memberships_of(db_session, tenant.user),
            },
        )
