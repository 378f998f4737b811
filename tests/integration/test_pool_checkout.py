"""The PostgreSQL pool hands out no connection its server has closed, without a pre-ping.

saas.db.config turns SQLAlchemy's pre-ping off (three round trips per checkout with asyncpg)
and checks instead, at checkout and at no cost, whether asyncpg already knows the connection
closed: a server restart or `pg_terminate_backend` must not cost the next request an error.
"""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy import text

from saas.config import load_settings
from saas.db.config import create_sqlalchemy_config
from tests.support.databases import _asyncpg_dsn


async def test_a_pooled_connection_the_server_closed_is_replaced_at_checkout(
    migrated_postgres: str,
) -> None:
    engine = create_sqlalchemy_config(load_settings(database_url=migrated_postgres)).get_engine()
    assert engine.pool._pre_ping is False  # what this replaces
    try:
        async with engine.connect() as connection:
            pid = await connection.scalar(text("SELECT pg_backend_pid()"))
        assert engine.pool.checkedin() == 1  # type: ignore[attr-defined]

        killer = await asyncpg.connect(_asyncpg_dsn(migrated_postgres))
        try:
            assert await killer.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await killer.close()
        await asyncio.sleep(0.2)  # the event loop reads the server's goodbye

        async with engine.connect() as connection:
            # No error, and a new server process: the closed one was never handed out.
            assert await connection.scalar(text("SELECT pg_backend_pid()")) != pid
    finally:
        await engine.dispose()
