"""Tenant pages under /o/<slug>/."""

from __future__ import annotations

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from saas.tenancy.context import TenantContext
from saas.tenancy.guards import requires
from saas.tenancy.permissions import Permission
from saas.web.pages import page_context


class OrganizationHomeController(Controller):
    path = "/"

    @get("/", name="org.home", guards=[requires(Permission.ORG_READ)])
    async def home(
        self, tenant: NamedDependency[TenantContext], db_session: NamedDependency[AsyncSession]
    ) -> Template:
        return Template("pages/org_home.html", context=await page_context(tenant, db_session))
