"""README, "Adding a tenant-scoped resource", followed by a test: a controller written and
registered the way it says is guarded, tenant-scoped and passes the isolation matrix.

Steps 1-3 (model and migration, repository and service, provider) are the projects resource's:
a migration cannot be added while the suite runs, and the `projects` provider is the one
step 3 describes. Steps 4 and 5 are done here exactly as written: a controller with a relative
path and a permission guard, appended to `DASHBOARD` and `API` in `saas/routes.py`, and its
routes declared in a matrix table that runs every actor against them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from litestar import Controller, MediaType, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body
from msgspec import Struct
from sqlalchemy import select

import saas.routes
from saas.app import create_app
from saas.db.config import standalone_session
from saas.db.models import Organization
from saas.projects.services import ProjectService
from saas.tenancy.caller import Caller
from saas.tenancy.context import TenantContext
from saas.tenancy.guards import member_of_tenant, requires
from saas.tenancy.permissions import Permission
from saas.web.input import SingleLine
from tests.support.matrix import Rule, Tenant, route_table, run_matrix
from tests.support.stack import Stack, running_stack, stack_settings


class NameForm(Struct):
    name: SingleLine = ""


class ProjectNamesController(Controller):
    """Step 4: a relative path, a permission per handler, the injected tenant-bound service."""

    path = "/project-names"

    @get("/", name="project_names.list", guards=[requires(Permission.ORG_READ)])
    async def names(self, projects: NamedDependency[ProjectService]) -> list[str]:
        page = await projects.page(search=None, limit=100, offset=0)
        return [project.name for project in page.items]

    @post(
        "/",
        name="project_names.create",
        guards=[requires(Permission.PROJECTS_WRITE)],
        media_type=MediaType.TEXT,
    )
    async def create(
        self,
        request: Request[Any, Any, Any],
        tenant: NamedDependency[TenantContext],
        projects: NamedDependency[ProjectService],
        data: Annotated[NameForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> str:
        project = await projects.create_project(data.name)
        return project.name


class ProjectNamesApi(Controller):
    path = "/project-names"

    @get("/", guards=[requires(Permission.ORG_READ)], summary="Project names")
    async def names(self, projects: NamedDependency[ProjectService]) -> list[str]:
        page = await projects.page(search=None, limit=100, offset=0)
        return [project.name for project in page.items]


def a_name() -> dict[str, str]:
    return {"name": f"Named {uuid.uuid4().hex[:10]}"}


# Step 5: the new routes' expectations, as test_route_matrix.py's ROUTES would declare them.
NEW_ROUTES: dict[tuple[str, str], Rule] = {
    ("GET", "/o/{slug:str}/project-names"): Tenant(Permission.ORG_READ, 200),
    ("POST", "/o/{slug:str}/project-names"): Tenant(Permission.PROJECTS_WRITE, 201, body=a_name),
    ("GET", "/api/v1/orgs/{org:str}/project-names"): Tenant(Permission.ORG_READ, 200, api=True),
}


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Step 4's registration: appended to the lists in saas/routes.py, nothing else."""
    monkeypatch.setattr(saas.routes, "DASHBOARD", [*saas.routes.DASHBOARD, ProjectNamesController])
    monkeypatch.setattr(saas.routes, "API", [*saas.routes.API, ProjectNamesApi])


@pytest.fixture
def stack_with_route(registered: None, database_url: str, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(stack_settings(database_url, tmp_path)) as stack:
        yield stack


def test_the_router_guards_every_handler_of_a_registered_controller(
    registered: None, database_url: str, tmp_path: Path
) -> None:
    table = route_table(create_app(stack_settings(database_url, tmp_path)))
    for key, rule in NEW_ROUTES.items():
        assert key in table, f"{key} is not served"
        guards = table[key].resolve_guards()
        # The router's membership guard, with nothing written for it in the controller...
        assert member_of_tenant in guards, key
        # ...and the handler's own permission, which the matrix reads.
        assert isinstance(rule, Tenant)
        assert [g.permission for g in guards if hasattr(g, "permission")] == [rule.permission]
        assert table[key].opt.get("private") is True, key


def test_a_route_added_as_the_readme_says_passes_the_isolation_matrix(
    stack_with_route: Stack,
) -> None:
    mismatches, cells = run_matrix(stack_with_route, NEW_ROUTES)
    assert cells == len(NEW_ROUTES) * 8
    assert not mismatches, f"{len(mismatches)} of {cells} cells differ:\n" + "\n".join(mismatches)


def test_a_route_added_as_the_readme_says_sees_only_its_tenants_rows(
    stack_with_route: Stack,
) -> None:
    async def add_globex_project() -> str:
        async with standalone_session(stack_with_route.settings) as session:
            globex = (
                await session.execute(select(Organization).where(Organization.slug == "globex"))
            ).scalar_one()
            project = await ProjectService(
                session=session, caller=Caller.system(globex)
            ).create_project(f"Globex only {uuid.uuid4().hex[:8]}")
            await session.commit()
            return project.name

    secret = asyncio.run(add_globex_project())
    acme = stack_with_route.browser()
    acme.login("alice@acme.example")
    listed = acme.get("/o/acme/project-names")
    assert listed.status_code == 200, listed.text
    assert secret not in listed.json()
    globex = stack_with_route.browser()
    globex.login("grace@globex.example")
    assert secret in globex.get("/o/globex/project-names").json()
    # And acme's route, asked for by globex's owner, does not exist for them.
    assert globex.get("/o/acme/project-names").status_code == 404
    acme.close()
    globex.close()
