"""Migrations are the only way the schema changes: prove they match the models and run
both ways, from an empty database, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from advanced_alchemy.base import metadata_registry
from sqlalchemy import inspect

from saas.config import load_settings
from saas.db.config import create_sqlalchemy_config
from tests.support.databases import ThrowawayDatabase, require_postgres
from tests.support.migrations import alembic_for, run_in_thread


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
        return
    database = ThrowawayDatabase.create(require_postgres())
    try:
        yield database.url
    finally:
        database.drop()


async def _table_names(url: str) -> set[str]:
    engine = create_sqlalchemy_config(load_settings(database_url=url)).get_engine()
    try:
        async with engine.connect() as connection:
            names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await engine.dispose()
    return set(names)


def test_upgrade_check_and_downgrade_round_trip(empty_database_url: str) -> None:
    model_tables = set(metadata_registry.get(None).tables)

    run_in_thread(lambda: alembic_for(empty_database_url).upgrade("head"))
    assert model_tables <= asyncio.run(_table_names(empty_database_url))

    # `alembic check` raises when autogenerate finds any difference between models and schema.
    run_in_thread(lambda: alembic_for(empty_database_url).check())

    run_in_thread(lambda: alembic_for(empty_database_url).downgrade("base"))
    assert asyncio.run(_table_names(empty_database_url)) <= {"alembic_version"}

    # And back up again: downgrade left nothing behind that blocks a fresh upgrade.
    run_in_thread(lambda: alembic_for(empty_database_url).upgrade("head"))
    run_in_thread(lambda: alembic_for(empty_database_url).check())


def test_history_is_linear() -> None:
    from alembic.script import ScriptDirectory

    from saas.db.config import MIGRATIONS_DIR

    config = alembic_for("sqlite+aiosqlite:///:memory:").config
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    scripts = ScriptDirectory.from_config(config)
    assert len(scripts.get_heads()) == 1
    assert len(scripts.get_bases()) == 1
