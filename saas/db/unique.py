"""Create a row unless its unique value is taken, in one statement the database decides.

A service checks "is this name free?" first, for the clear message, but two requests can both
pass that check before either inserts. The unique constraint then refuses the second INSERT,
which aborts its transaction on PostgreSQL (nothing more can be read to answer with) and, left
to itself, ends in a 500. `INSERT ... ON CONFLICT (...) DO NOTHING RETURNING` instead waits for
the first writer, inserts nothing, and returns no row: the caller answers as it does for a
value that was already taken, with its transaction intact and nothing half written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session

ModelT = TypeVar("ModelT")


async def insert_unless_taken(
    session: AsyncSession | async_scoped_session[AsyncSession],
    model: type[ModelT],
    values: Mapping[str, Any],
    *,
    unique: Sequence[str | ColumnElement[Any]],
    index_where: ColumnElement[bool] | None = None,
) -> ModelT | None:
    """The new row (in the session, as `add` would leave it), or None when another row holds
    the same values of the `unique` columns. Only that constraint is an expected conflict:
    any other still raises. For a unique index over expressions (`lower(name)`), give the
    same expressions: both databases match the conflict target to the index by them. For a
    partial unique index, `index_where` is its predicate (or one that implies it), which is how both
    databases pick that index as the conflict target."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(model)
    elif dialect == "sqlite":
        statement = sqlite.insert(model)
    else:  # pragma: no cover - the app runs on these two
        msg = f"insert_unless_taken supports PostgreSQL and SQLite, not {dialect}"
        raise NotImplementedError(msg)
    statement = (
        statement.values(**values)
        .on_conflict_do_nothing(index_elements=list(unique), index_where=index_where)
        .returning(model)
    )
    row: ModelT | None = (await session.execute(statement)).scalar_one_or_none()
    return row
