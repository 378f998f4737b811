"""Projects pages: the sample tenant resource, as full pages and htmx fragments.

One template renders the list whether it arrives as a fragment (htmx) or inside the full page.
A write that the service refuses (a name missing, too long or taken) is answered by `FORM`
(saas/web/refusals.py), beside the new-project field; no handler here catches a `DomainError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, get
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncSession

from saas.projects.services import ProjectService
from saas.tenancy.context import TenantContext
from saas.tenancy.guards import requires
from saas.tenancy.permissions import Permission
from saas.tenancy.routers import form_post
from saas.web.htmx import VARY, is_fragment
from saas.web.input import SingleLine
from saas.web.pages import page_context
from saas.web.refusals import FormErrors

PAGE_SIZE = 50
# Refusals of a create or a rename, shown in the new-project form (which names the field).
FORM = FormErrors("partials/projects_form.html", target="#project-create", title="Projects")


class ProjectForm(Struct):
    name: SingleLine = ""


Form = Annotated[ProjectForm, Body(media_type=RequestEncodingType.URL_ENCODED)]


@dataclass(frozen=True, slots=True)
class ProjectsPage:
    """The projects page of the request's tenant, as its handlers answer with it (`page`)."""

    request: Request[Any, Any, Any]
    tenant: TenantContext
    db: AsyncSession
    projects: ProjectService

    async def render(self, search: str | None = None) -> Template:
        """The list, as an htmx fragment or inside the full page."""
        found = await self.projects.page(search=search, limit=PAGE_SIZE, offset=0)
        extra = {"projects": found.items, "total": found.total, "q": search or ""}
        if is_fragment(self.request):
            return Template(
                "partials/projects_panel.html",
                context={"tenant": self.tenant, **extra},
                headers=VARY,
            )
        context = await page_context(self.tenant, self.db, **extra)
        return Template("pages/projects.html", context=context, headers=VARY)

    async def changed(self, done: str) -> Template | Redirect:
        if is_fragment(self.request):
            return await self.render()
        # Post/redirect/get for plain forms, so a reload does not resubmit; the page the
        # redirect lands on says what happened.
        flash(self.request, done, "success")
        path = self.request.app.route_reverse("projects.list", slug=self.tenant.organization.slug)
        return Redirect(path=path, status_code=303)


def provide_projects_page(
    request: Request[Any, Any, Any],
    tenant: NamedDependency[TenantContext],
    db_session: NamedDependency[AsyncSession],
    projects: NamedDependency[ProjectService],
) -> ProjectsPage:
    return ProjectsPage(request, tenant, db_session, projects)


class ProjectsController(Controller):
    path = "/projects"
    dependencies = {"page": Provide(provide_projects_page, sync_to_thread=False)}

    @get("/", name="projects.list", guards=[requires(Permission.ORG_READ)])
    async def list_projects(
        self, page: NamedDependency[ProjectsPage], q: FromQuery[str | None] = None
    ) -> Template:
        return await page.render(search=q)

    @form_post(
        "/",
        name="projects.create",
        permission=Permission.PROJECTS_WRITE,
        # What was typed goes back into the field with the refusal.
        **FORM.route_options(),
    )
    async def create_project(
        self, page: NamedDependency[ProjectsPage], data: Form
    ) -> Template | Redirect:
        project = await page.projects.create_project(data.name)
        return await page.changed(f"Project “{project.name}” created.")

    @form_post(
        "/{project_id:uuid}/rename",
        name="projects.rename",
        permission=Permission.PROJECTS_WRITE,
        # Not `remember`: the new name is not the new-project field's to show.
        **FORM.route_options(remember=False),
    )
    async def rename_project(
        self, page: NamedDependency[ProjectsPage], project_id: FromPath[UUID], data: Form
    ) -> Template | Redirect:
        project = await page.projects.rename_project(project_id, data.name)
        return await page.changed(f"Project renamed to “{project.name}”.")

    @form_post(
        "/{project_id:uuid}/delete", name="projects.delete", permission=Permission.PROJECTS_WRITE
    )
    async def delete_project(
        self, page: NamedDependency[ProjectsPage], project_id: FromPath[UUID]
    ) -> Template | Redirect:
        project = await page.projects.delete_project(project_id)
        return await page.changed(f"Project “{project.name}” deleted.")
