"""Engine, session and Alembic configuration for the app's SQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from advanced_alchemy.extensions.litestar import (
    AlembicAsyncConfig,
    AsyncSessionConfig,
    EngineConfig,
    SQLAlchemyAsyncConfig,
)
from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.pool import ConnectionPoolEntry

from saas.config import PROJECT_ROOT, Settings

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
SESSION_DEPENDENCY_KEY = "db_session"


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _: ConnectionPoolEntry) -> None:
    # SQLite ignores foreign keys unless asked, and fails at once on a busy file without a
    # timeout; WAL lets readers and the single writer proceed side by side.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _refuse_closed(dbapi_connection: Any, _record: ConnectionPoolEntry, _proxy: Any) -> None:
    """At checkout: a pooled connection its server has closed is not handed out; the pool
    replaces it (SQLAlchemy retries the checkout on DisconnectionError)."""
    driver = getattr(dbapi_connection, "_connection", None)  # asyncpg's, under the adapter
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def create_sqlalchemy_config(settings: Settings) -> SQLAlchemyAsyncConfig:
    # Bound parameters (emails, names) stay out of exception text, and so out of the logs.
    engine_options: dict[str, Any] = {"hide_parameters": settings.is_production}
    if settings.is_postgres:
        engine_options |= {
            "pool_size": 10,
            "max_overflow": 10,
            # No pre-ping: with asyncpg it is three round trips (BEGIN, an empty query,
            # ROLLBACK) on every checkout, about 7% of a members page. A connection the server
            # closed (a restart, pg_terminate_backend, the idle-in-transaction timeout) is
            # already known closed by asyncpg, and `_refuse_closed` swaps it at checkout at no
            # cost; connections are renewed every half hour, so none outlives a silent network
            # change for long; and one that breaks mid-request still invalidates the pool.
            "pool_pre_ping": False,
            "pool_recycle": 1800,
            # A request that cannot get a connection soon answers an error rather than queue
            # without end behind requests that hold theirs.
            "pool_timeout": 10,
            "connect_args": {
                "server_settings": {
                    # asyncpg prepares every statement, and after five runs PostgreSQL may
                    # switch to a generic plan that ignores the parameters' values. For a
                    # search (`ILIKE $2`) that plan cannot see the pattern and scans: 435 ms
                    # instead of 30 ms for one first name in a 100,000-member organization.
                    # Planning each run costs ~0.3 ms.
                    "plan_cache_mode": "force_custom_plan",
                    # A transaction left idle (code that awaits something slow with one open)
                    # is ended by the server after a minute, not left holding its connection.
                    "idle_in_transaction_session_timeout": "60s",
                }
            },
        }
    config = SQLAlchemyAsyncConfig(
        connection_string=settings.database_url,
        engine_config=EngineConfig(**engine_options),
        session_config=AsyncSessionConfig(expire_on_commit=False),
        session_dependency_key=SESSION_DEPENDENCY_KEY,
        # No autocommit hook: it sends the success answer even when the COMMIT fails. The
        # default hook only closes the session; saas.web.commit commits, and answers a
        # failed commit (the application's middleware).
        create_all=False,  # migrations are the only way the schema changes
        alembic_config=AlembicAsyncConfig(
            script_location=str(MIGRATIONS_DIR),
            script_config=str(MIGRATIONS_DIR / "alembic.ini"),
            version_table_name="alembic_version",
            compare_type=True,
            render_as_batch=True,
        ),
    )
    _release_key_registrations(config)
    if settings.is_postgres:
        event.listen(config.get_engine().sync_engine, "checkout", _refuse_closed)
    else:
        event.listen(config.get_engine().sync_engine, "connect", _sqlite_pragmas)
    return config


@asynccontextmanager
async def standalone_session(settings: Settings) -> AsyncIterator[AsyncSession]:
    """A session outside any request (CLI commands, seeds): its own engine, disposed after.
    The caller commits."""
    config = create_sqlalchemy_config(settings)
    try:
        async with config.get_session() as session:
            yield session
    finally:
        await config.get_engine().dispose()


def _release_key_registrations(config: SQLAlchemyAsyncConfig) -> None:
    """Advanced Alchemy registers each config's state keys process-wide and renames later
    configs' keys (`db_engine_1`, `_2`, ...) recursively, which ends in a RecursionError after
    about a thousand configs (test suites, CLIs that build several apps). Keys only need to be
    unique within one application, and each of ours has exactly one config: release them."""
    for registry, key in (
        ("_SESSION_SCOPE_KEY_REGISTRY", config.session_scope_key),
        ("_ENGINE_APP_STATE_KEY_REGISTRY", config.engine_app_state_key),
        ("_SESSIONMAKER_APP_STATE_KEY_REGISTRY", config.session_maker_app_state_key),
    ):
        getattr(type(config), registry, set()).discard(key)
