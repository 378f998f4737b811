"""Every row of a database's tables, kept once and put back between tests.

A running stack's databases are seeded once; before each test the rows are deleted and the
seeded ones inserted again, which returns the database to exactly the state the servers
started with (same ids, same timestamps) in a few milliseconds, instead of a new seed per test.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import MetaData, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


@dataclass(frozen=True)
class Snapshot:
    tables: Sequence[Table]  # parents before children
    rows: Mapping[str, Sequence[Mapping[str, Any]]]

    @classmethod
    async def take(cls, engine: AsyncEngine, metadata: MetaData) -> Snapshot:
        tables = list(metadata.sorted_tables)
        rows: dict[str, list[dict[str, Any]]] = {}
        async with engine.connect() as connection:
            for table in tables:
                result = await connection.execute(select(table))
                rows[table.name] = [dict(row) for row in result.mappings()]
        return cls(tables=tables, rows=rows)

    async def restore(self, engine: AsyncEngine) -> None:
        """Delete every row, then insert the snapshot's, in one transaction."""
        async with engine.begin() as connection:
            await self._delete_all(connection)
            for table in self.tables:
                if rows := self.rows[table.name]:
                    await connection.execute(table.insert(), list(rows))

    async def _delete_all(self, connection: AsyncConnection) -> None:
        # One DELETE per table, children first. On these few-row tables that is about four
        # times faster on PostgreSQL than TRUNCATE ... CASCADE, which replaces every table's
        # files (measured: 10-16 ms against 43-53 ms median for the seeded tables).
        for table in reversed(self.tables):
            await connection.execute(table.delete())
