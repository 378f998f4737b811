"""Keyset ("cursor") pagination: each page starts where the previous one ended.

OFFSET makes the database read and throw away every row before the page, so page 2,000 of a
100,000-member list costs 2,000 pages of work. A cursor instead carries the sort value and the
tie-breaking id of the row at the page's edge; the next page is `WHERE (value, id) > (:v, :id)`,
which a B-tree index on (value, id) answers by seeking, at any depth.

NULLs sort after every value, PostgreSQL's default, so one ascending index serves both
directions. For a nullable column "after this row" is two index ranges (the remaining values,
then the NULL block): `SortKey.after()` returns them as separate predicates, to be read in turn
until the page is full, so a page costs at most two statements.

Cursors are not signed: they only hold the edge row's sort value and id, which the reader has
already seen, and every query that uses one is still filtered to the caller's organization. A
cursor that does not decode, or belongs to another sort, is refused as `InvalidCursor`.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec
from sqlalchemy import ColumnElement, and_, func, literal, tuple_


class InvalidCursor(ValueError):
    """The cursor does not decode, or was made for another sort."""


class Cursor(msgspec.Struct, array_like=True, forbid_unknown_fields=True, frozen=True):
    """The edge row of a page, for the sort it was read in."""

    sort: str
    descending: bool
    value: str | None
    id: UUID

    def encode(self) -> str:
        return base64.urlsafe_b64encode(msgspec.json.encode(self)).rstrip(b"=").decode()

    @classmethod
    def decode(cls, token: str) -> Cursor:
        if len(token) > 1024:
            raise InvalidCursor("The page cursor is too long.")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            return msgspec.json.decode(raw, type=cls)
        except (binascii.Error, ValueError, msgspec.ValidationError, msgspec.DecodeError):
            raise InvalidCursor(
                "The page cursor is not valid; start from the first page."
            ) from None


@dataclass(frozen=True)
class SortKey:
    """A sort column, the column that breaks its ties (unique within the listed set), and how
    to read both from a result row."""

    column: Any
    tiebreak: Any
    read: Callable[[Any], tuple[Any, UUID]]
    nullable: bool = False

    def order_by(self, descending: bool, *, use_index: bool = True) -> tuple[Any, Any]:
        """`use_index=False` orders by `coalesce(column, column)`: the same order, which the
        planner cannot read from the sort index, so it finds a few filtered rows another way
        (a search's trigram index) and sorts them, instead of walking the index past every row
        that does not match."""
        column = self.column if use_index else func.coalesce(self.column, self.column)
        if descending:
            column = column.desc().nulls_first() if self.nullable else column.desc()
            return column, self.tiebreak.desc()
        column = column.asc().nulls_last() if self.nullable else column.asc()
        return column, self.tiebreak.asc()

    def cursor(self, sort: str, descending: bool, row: Any) -> Cursor:
        value, row_id = self.read(row)
        if isinstance(value, datetime.datetime):
            value = value.isoformat()
        return Cursor(sort=sort, descending=descending, value=value, id=row_id)

    def check(self, cursor: Cursor, sort: str, descending: bool) -> None:
        """Refuse a cursor made for another sort order, or whose value this sort cannot hold:
        before any query runs."""
        if cursor.sort != sort or cursor.descending != descending:
            raise InvalidCursor("The page cursor belongs to another sort order.")
        self._value(cursor)

    def _value(self, cursor: Cursor) -> Any:
        if cursor.value is None:
            if not self.nullable:
                raise InvalidCursor("The page cursor is not valid for this sort.")
            return None
        if self.column.type.python_type is datetime.datetime:
            try:
                parsed = datetime.datetime.fromisoformat(cursor.value)
            except ValueError:
                raise InvalidCursor("The page cursor is not valid for this sort.") from None
            if parsed.tzinfo is None:
                raise InvalidCursor("The page cursor is not valid for this sort.")
            return parsed
        return cursor.value

    def after(self, cursor: Cursor, descending: bool) -> list[ColumnElement[bool]]:
        """The rows after the cursor's row, in `descending` order, as index ranges in order."""
        column, tiebreak = self.column, self.tiebreak
        value = self._value(cursor)
        row_id = literal(cursor.id, tiebreak.type)
        if value is None:
            # The cursor sits in the NULL block: last when ascending, first when descending.
            if descending:
                return [and_(column.is_(None), tiebreak < row_id), column.is_not(None)]
            return [and_(column.is_(None), tiebreak > row_id)]
        edge = tuple_(literal(value, column.type), row_id)
        if descending:
            return [tuple_(column, tiebreak) < edge]
        ranges = [tuple_(column, tiebreak) > edge]
        if self.nullable:
            ranges.append(column.is_(None))
        return ranges
