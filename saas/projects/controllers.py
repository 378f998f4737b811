"""Projects pages: the sample tenant resource, as full pages and htmx fragments.

One template renders the list whether it arrives as a fragment (htmx) or inside the full page.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template
from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncSession

from saas.errors import DomainError
from saas.login.current_user import actor_from
from saas.projects.services import ProjectService
from saas.tenancy.authority import AuthorityRefused
from saas.tenancy.context import TenantContext
from saas.tenancy.guards import requires
from saas.tenancy.permissions import Permission
from saas.web.input import SingleLine
from saas.web.pages import page_context

PAGE_SIZE = 50


class ProjectForm(Struct):
    name: SingleLine = ""


Form = Annotated[ProjectForm, Body(media_type=RequestEncodingType.URL_ENCODED)]


class ProjectsController(Controller):
    path = "/projects"

    async def _list_response(
        self,
        request: HTMXRequest,
        tenant: TenantContext,
        db: AsyncSession,
        service: ProjectService,
        *,
        search: str | None = None,
        error: DomainError | None = None,
        name: str = "",
    ) -> Template:
        page = await service.page(search=search, limit=PAGE_SIZE, offset=0)
        extra = {
            "projects": page.items,
            "total": page.total,
            "q": search or "",
            "error": error,
            "name": name,
        }
        status = error.status_code if error else 200
        if request.htmx:
            return Template(
                "partials/projects_panel.html",
                context={"tenant": tenant, **extra},
                status_code=status,
            )
        return Template(
            "pages/projects.html",
            context=await page_context(tenant, db, **extra),
            status_code=status,
        )

    @get("/", name="projects.list", guards=[requires(Permission.ORG_READ)])
    async def list_projects(
        self,
        request: HTMXRequest,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        projects: NamedDependency[ProjectService],
        q: FromQuery[str | None] = None,
    ) -> Template:
        return await self._list_response(request, tenant, db_session, projects, search=q)

    @post("/", name="projects.create", guards=[requires(Permission.PROJECTS_WRITE)])
    async def create_project(
        self,
        request: HTMXRequest,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        projects: NamedDependency[ProjectService],
        data: Form,
    ) -> Template | Redirect:
        try:
            await projects.create_project(
                name=data.name, actor=actor_from(request, tenant.user), authority=tenant.acting
            )
        except AuthorityRefused:
            raise
        except DomainError as error:
            return await self._list_response(
                request, tenant, db_session, projects, error=error, name=data.name[:200]
            )
        return await self._after_change(request, tenant, db_session, projects)

    @post(
        "/{project_id:uuid}/rename",
        name="projects.rename",
        guards=[requires(Permission.PROJECTS_WRITE)],
    )
    async def rename_project(
        self,
        request: HTMXRequest,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        projects: NamedDependency[ProjectService],
        project_id: FromPath[UUID],
        data: Form,
    ) -> Template | Redirect:
        try:
            await projects.rename_project(
                project_id=project_id,
                name=data.name,
                actor=actor_from(request, tenant.user),
                authority=tenant.acting,
            )
        except DomainError as error:
            if isinstance(error, AuthorityRefused) or error.status_code == 404:
                raise
            return await self._list_response(request, tenant, db_session, projects, error=error)
        return await self._after_change(request, tenant, db_session, projects)

    @post(
        "/{project_id:uuid}/delete",
        name="projects.delete",
        guards=[requires(Permission.PROJECTS_WRITE)],
    )
    async def delete_project(
        self,
        request: HTMXRequest,
        tenant: NamedDependency[TenantContext],
        db_session: NamedDependency[AsyncSession],
        projects: NamedDependency[ProjectService],
        project_id: FromPath[UUID],
    ) -> Template | Redirect:
        await projects.delete_project(
            project_id=project_id, actor=actor_from(request, tenant.user), authority=tenant.acting
        )
        return await self._after_change(request, tenant, db_session, projects)

    async def _after_change(
        self,
        request: Request[Any, Any, Any],
        tenant: TenantContext,
        db: AsyncSession,
        projects: ProjectService,
    ) -> Template | Redirect:
        if isinstance(request, HTMXRequest) and request.htmx:
            return await self._list_response(request, tenant, db, projects)
        # Post/redirect/get for plain forms, so a reload does not resubmit.
        return Redirect(path=f"/o/{tenant.organization.slug}/projects/", status_code=303)
