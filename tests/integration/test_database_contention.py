"""Contention the database refuses (a deadlock PostgreSQL broke, SQLite locked by another
writer) is a 503 with Retry-After, as an error page, problem details or a SCIM error; any other
database error stays a 500. The errors are real ones, raised by the database on this machine,
then answered by the app's own exception handlers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.testing import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from saas.app import create_app
from saas.config import Settings
from saas.web.errors import DATABASE_BUSY_DETAIL, EXCEPTION_HANDLERS, SCIM_OPT, handler_for


async def _deadlock(engine: AsyncEngine) -> DBAPIError:
    """Two transactions each holding the lock the other waits for: PostgreSQL ends one."""
    async with engine.connect() as first, engine.connect() as second:
        await first.execute(text("SELECT pg_advisory_xact_lock(4201)"))
        await second.execute(text("SELECT pg_advisory_xact_lock(4202)"))
        crossing = [
            asyncio.ensure_future(first.execute(text("SELECT pg_advisory_xact_lock(4202)"))),
            asyncio.ensure_future(second.execute(text("SELECT pg_advisory_xact_lock(4201)"))),
        ]
        outcomes = await asyncio.gather(*crossing, return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, DBAPIError)]
        assert len(errors) == 1, outcomes
        return errors[0]


async def _locked(settings: Settings) -> DBAPIError:
    """A second writer while the first holds SQLite's write lock, with no time to wait."""
    impatient = create_async_engine(settings.database_url, connect_args={"timeout": 0})
    try:
        async with impatient.begin() as setup:
            await setup.execute(text("CREATE TABLE contention_probe (x INTEGER)"))
        async with impatient.connect() as first, impatient.connect() as second:
            await first.execute(text("INSERT INTO contention_probe VALUES (1)"))
            with pytest.raises(DBAPIError) as refused:
                await second.execute(text("INSERT INTO contention_probe VALUES (2)"))
            return refused.value
    finally:
        await impatient.dispose()


async def _not_contention(engine: AsyncEngine) -> DBAPIError:
    async with engine.connect() as connection:
        with pytest.raises(DBAPIError) as refused:
            await connection.execute(text("SELECT * FROM no_such_table"))
        return refused.value


def _client(settings: Settings, raised: BaseException) -> TestClient[Litestar]:
    """The app itself, with two routes that fail as a write's commit would."""

    @get("/page", sync_to_thread=False)
    def page() -> None:
        raise raised

    @get("/scim", sync_to_thread=False, opt={SCIM_OPT: True})
    def scim() -> None:
        raise raised

    app = create_app(settings)
    app.register(page)
    app.register(scim)
    return TestClient(app, raise_server_exceptions=False)


async def test_contention_is_a_503_to_try_again(
    backend: str, engine: AsyncEngine, settings: Settings
) -> None:
    error = await (_deadlock(engine) if backend == "postgresql" else _locked(settings))
    assert handler_for(error) is EXCEPTION_HANDLERS[DBAPIError]
    with _client(settings, error) as client:
        problem = client.get("/page", headers={"accept": "application/json"})
        assert problem.status_code == 503
        assert problem.headers["retry-after"] == "1"
        assert problem.headers["content-type"].startswith("application/problem+json")
        assert problem.json()["detail"] == DATABASE_BUSY_DETAIL
        page = client.get("/page", headers={"accept": "text/html"})
        assert page.status_code == 503
        assert "nothing of this request was saved" in page.text
        assert "pg_advisory" not in page.text
        assert "database is locked" not in page.text
        directory = client.get("/scim")
        assert directory.status_code == 503
        assert directory.headers["content-type"].startswith("application/scim+json")


async def test_other_database_errors_stay_unexpected(
    engine: AsyncEngine, settings: Settings
) -> None:
    error = await _not_contention(engine)
    with _client(settings, error) as client:
        answer: Any = client.get("/page", headers={"accept": "application/json"})
        assert answer.status_code == 500
        assert "no_such_table" not in answer.text
