"""Alembic environment, run through Advanced Alchemy's command config.

Every migration runs in one transaction, so a failure on PostgreSQL leaves the schema as it was.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, cast

from advanced_alchemy.base import metadata_registry
from advanced_alchemy.types import GUID
from alembic import context
from alembic.autogenerate import rewriter
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import AsyncEngine, async_engine_from_config

import saas.db.models  # noqa: F401  (registers every table on the metadata)

if TYPE_CHECKING:
    from advanced_alchemy.alembic.commands import AlembicCommandConfig
    from sqlalchemy.engine import Connection

config: AlembicCommandConfig = context.config  # type: ignore[assignment]
writer = rewriter.Rewriter()


def _compare_type(
    _context: object,
    _inspected_column: object,
    _metadata_column: object,
    _inspected_type: object,
    metadata_type: object,
) -> bool | None:
    # GUID is stored as BINARY(16) on SQLite, which reflects back as NUMERIC: a false diff.
    if isinstance(metadata_type, GUID):
        return False
    return None  # alembic's default comparison for everything else


def _include_object(
    obj: object, _name: str | None, type_: str, _reflected: bool, _compare_to: object
) -> bool:
    # An index the model marks PostgreSQL-only (trigram search) is neither expected nor
    # created on other databases; see saas/db/models/user.py.
    if type_ == "index":
        dialects = getattr(obj, "info", {}).get("dialects")
        if dialects is not None:
            return bool(context.get_context().dialect.name in dialects)
    return True


def _configure(**kwargs: object) -> None:
    context.configure(
        target_metadata=metadata_registry.get(config.bind_key),
        include_object=_include_object,
        compare_type=_compare_type if config.compare_type else False,
        compare_server_default=False,
        version_table=config.version_table_name,
        version_table_schema=config.version_table_schema,
        user_module_prefix=config.user_module_prefix,
        render_as_batch=config.render_as_batch,
        process_revision_directives=writer,
        transaction_per_migration=True,
        **kwargs,  # type: ignore[arg-type]
    )


def run_migrations_offline() -> None:
    _configure(url=config.db_url, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    configuration = config.get_section(config.config_ini_section) or {}
    configuration["sqlalchemy.url"] = config.db_url
    connectable = cast(
        "AsyncEngine",
        config.engine
        or async_engine_from_config(configuration, prefix="sqlalchemy.", poolclass=pool.NullPool),
    )
    async with connectable.connect() as connection:
        await connection.run_sync(do_run_migrations)
    # The loop asyncio.run made is about to close; pooled connections must not outlive it.
    await connectable.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
