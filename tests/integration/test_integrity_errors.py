"""Which refusals of the database are a conflict (409) and which are a bug (a logged 500).

A unique or foreign-key violation is what a request that raced another one meets: the value is
taken now, or the row it refers to is gone. A NOT NULL (or CHECK) violation is never a race:
the code wrote something the schema forbids, and answering 409 "try again" would hide the bug.

The app under uvicorn, on both databases, with routes added for the test that make real writes
the schema refuses, directly and through an Advanced Alchemy repository (which wraps the error).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath
from sqlalchemy.ext.asyncio import AsyncSession

from saas.app import create_app
from saas.db.models import Organization, Project
from saas.projects.services import ProjectRepository
from saas.tenancy.routers import API_OPT
from tests.support.servers import serve
from tests.support.stack import stack_settings

PROBLEM_JSON = "application/problem+json"


async def _organization(db: AsyncSession) -> Organization:
    organization = Organization(slug=f"o-{uuid.uuid4().hex[:8]}", display_name="O")
    db.add(organization)
    await db.flush()
    return organization


def violation_route() -> HTTPRouteHandler:
    """A route that makes the write `kind` names, which the schema refuses. (A new handler
    for each app: Litestar keeps what it resolved for one on the handler.)"""

    # Declared an API route as the API router declares its own, so refusals are JSON problems.
    @get("/api/test-only/violate/{kind:str}", opt={API_OPT: True})
    async def violate(kind: FromPath[str], db_session: NamedDependency[AsyncSession]) -> None:
        organization = await _organization(db_session)
        repository = ProjectRepository(session=db_session, organization_id=organization.id)
        rows: dict[str, Any] = {
            "unique": [Project(name="Roadmap"), Project(name="roadmap")],
            "foreign-key": [Project(organization_id=uuid.uuid4(), name="Orphan")],
            "not-null": [Project(name=None)],
        }
        if kind.endswith("-via-repository"):
            for row in rows[kind.removesuffix("-via-repository")]:
                await repository.add(row, auto_commit=False)
            return
        for row in rows[kind]:
            row.organization_id = row.organization_id or organization.id
            db_session.add(row)
            await db_session.flush()

    return violate


@pytest.fixture
def app_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    settings = stack_settings(database_url, tmp_path, outbox_worker_enabled=False)
    app: Litestar = create_app(settings)
    app.register(violation_route())
    with serve(app) as url:
        yield url


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("unique", 409),
        ("unique-via-repository", 409),
        ("foreign-key", 409),
        ("not-null", 500),
        ("not-null-via-repository", 500),
    ],
)
def test_only_unique_and_foreign_key_violations_are_conflicts(
    app_url: str, kind: str, status: int
) -> None:
    response = httpx.get(f"{app_url}/api/test-only/violate/{kind}", timeout=15)
    assert response.status_code == status, (kind, response.text)
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    detail = response.json()["detail"]
    if status == 500:
        # The answer of the handler for unexpected exceptions, which logs them with a trace.
        assert detail == "An unexpected error occurred. It has been logged; please try again."
    else:
        assert "conflicts with a change made at the same time" in detail
