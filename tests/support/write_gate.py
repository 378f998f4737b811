"""Hold back the database's writers so that concurrent requests all read before any of them
writes: the interleaving that turns a check-then-insert into a race, made certain.

PostgreSQL: a SHARE lock on one table (or the row locks of a held change). Reads pass; INSERT,
UPDATE and DELETE on that table wait, and the test sees them waiting in `pg_locks`.
SQLite: the database's write lock (`BEGIN IMMEDIATE` on a connection of our own). Readers pass
(WAL); every writer waits in its busy handler, which nothing outside the process can observe,
so the gate waits a settling time instead.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
from sqlalchemy.engine import make_url

from tests.support.databases import _asyncpg_dsn

SQLITE_SETTLE_SECONDS = 1.5
WAIT_SECONDS = 20.0
# Backends of this database (other test runs share the server) waiting for a lock. Asked on a
# connection outside any transaction: inside one, pg_stat_activity is a snapshot taken at its
# first read, which never shows a connection the app opens later.
_WAITING = """
SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE NOT l.granted AND a.datname = current_database()
"""


@dataclass
class Gate:
    monitor: asyncpg.Connection | None

    async def wait_for_writers(self, count: int) -> None:
        """Until `count` writers wait at the gate (PostgreSQL), or a settling time (SQLite)."""
        if self.monitor is None:
            await asyncio.sleep(SQLITE_SETTLE_SECONDS)
            return
        waiting = 0
        try:
            async with asyncio.timeout(WAIT_SECONDS):
                # Polls the server's view: there is no event to wait on.
                while (waiting := await self.monitor.fetchval(_WAITING)) < count:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(f"only {waiting} of {count} writers reached the gate") from None


@asynccontextmanager
async def writes_held(
    database_url: str, table: str, *, meanwhile: str | None = None
) -> AsyncIterator[Gate]:
    """Writes to `table` (on SQLite: all writes) wait until the block ends.

    With `meanwhile`, that statement is made in the held transaction and committed when the
    block ends (a change the waiting writers then find); without, nothing is written."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        holder = await asyncpg.connect(_asyncpg_dsn(database_url), timeout=5)
        monitor = await asyncpg.connect(_asyncpg_dsn(database_url), timeout=5)
        try:
            transaction = holder.transaction()
            await transaction.start()
            if meanwhile is None:
                await holder.execute(f'LOCK TABLE "{table}" IN SHARE MODE')
            else:
                await holder.execute(meanwhile)  # its row locks hold those rows' writers
            try:
                yield Gate(monitor)
            finally:
                await (transaction.rollback() if meanwhile is None else transaction.commit())
        finally:
            await monitor.close()
            await holder.close()
        return
    lock = sqlite3.connect(str(url.database), timeout=15, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        if meanwhile is not None:
            lock.execute(meanwhile)
        try:
            yield Gate(None)
        finally:
            lock.execute("ROLLBACK" if meanwhile is None else "COMMIT")
    finally:
        lock.close()
