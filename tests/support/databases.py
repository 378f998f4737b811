"""Real databases for tests: SQLite files and throwaway PostgreSQL databases.

PostgreSQL tests skip with a clear reason when no server answers, except in CI (CI=true),
where a missing server is a failure: CI must never pass by skipping.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass

import asyncpg
import pytest
from sqlalchemy.engine import make_url

DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def pg_base_url() -> str:
    return os.environ.get("TEST_DATABASE_URL", DEFAULT_PG_URL)


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _probe(url: str) -> str | None:
    try:
        connection = await asyncpg.connect(_asyncpg_dsn(url), timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as error:
        return f"{type(error).__name__}: {error}"
    await connection.close()
    return None


_probe_result: dict[str, str | None] = {}


def require_postgres() -> str:
    """Return the server URL, or skip (fail in CI) with the reason."""
    url = pg_base_url()
    if url not in _probe_result:
        _probe_result[url] = asyncio.run(_probe(url))
    problem = _probe_result[url]
    if problem is not None:
        message = f"PostgreSQL not reachable at {make_url(url).render_as_string()}: {problem}"
        if in_ci():
            pytest.fail(f"{message} (CI=true: PostgreSQL tests must run, not skip)")
        pytest.skip(f"{message}; set TEST_DATABASE_URL to run the PostgreSQL tests")
    return url


@dataclass
class ThrowawayDatabase:
    """A fresh PostgreSQL database on the test server, dropped afterwards."""

    server_url: str
    name: str

    @property
    def url(self) -> str:
        return (
            make_url(self.server_url).set(database=self.name).render_as_string(hide_password=False)
        )

    @classmethod
    def create(cls, server_url: str, *, template: str | None = None) -> ThrowawayDatabase:
        """An empty database, or a copy of `template` (a database nobody is connected to:
        PostgreSQL copies its files, much faster than migrating another one)."""
        db = cls(server_url=server_url, name=f"saas_test_{uuid.uuid4().hex[:12]}")
        copy = f' TEMPLATE "{template}"' if template else ""
        asyncio.run(db._execute(f'CREATE DATABASE "{db.name}"{copy}'))
        return db

    def drop(self) -> None:
        asyncio.run(self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))

    async def _execute(self, statement: str) -> None:
        connection = await asyncpg.connect(_asyncpg_dsn(self.server_url), timeout=5)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()
