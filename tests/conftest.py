"""Shared fixtures: settings, real databases on both backends, sessions.

`database_url` is parametrized over SQLite and PostgreSQL, so every test that asks for it runs
on both. SQLite tests copy a migrated template file (fast, fully isolated); PostgreSQL tests
share one migrated throwaway database per run and have their rows truncated afterwards.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from advanced_alchemy.base import metadata_registry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import saas.db.models  # noqa: F401
from saas.config import Settings, load_settings
from saas.db.config import create_sqlalchemy_config
from tests.support.databases import ThrowawayDatabase, require_postgres
from tests.support.migrations import upgrade

BACKENDS = ("sqlite", "postgresql")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests last: Playwright's sync API leaves an event loop marked as running in
    the main thread while it is up, which breaks `asyncio.run()` in tests that follow it."""
    items.sort(key=lambda item: "/tests/e2e/" in str(item.path))


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
def empty_sqlite_url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path / "empty.db")


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "app.db"
    upgrade(sqlite_url(path))
    return path


@pytest.fixture(scope="session")
def migrated_postgres() -> Iterator[str]:
    server = require_postgres()
    database = ThrowawayDatabase.create(server)
    try:
        upgrade(database.url)
        yield database.url
    finally:
        database.drop()


async def _truncate_all(url: str) -> None:
    settings = load_settings(database_url=url)
    engine = create_sqlalchemy_config(settings).get_engine()
    tables = ", ".join(f'"{t.name}"' for t in metadata_registry.get(None).sorted_tables)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        await engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("migrated_sqlite_template")
        target = tmp_path / "app.db"
        shutil.copyfile(template, target)
        yield sqlite_url(target)
        return
    url: str = request.getfixturevalue("migrated_postgres")
    yield url
    asyncio.run(_truncate_all(url))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return load_settings(
        database_url=database_url,
        app_env="test",
        devidp_database_url=sqlite_url(tmp_path / "devidp.db"),
        devidp_key_path=tmp_path / "devidp-keys.json",
    )


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_sqlalchemy_config(settings).get_engine()
    yield engine
    await engine.dispose()


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@pytest.fixture
async def session(
    session_factory: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    async with session_factory() as session:
        yield session
