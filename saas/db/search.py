"""Case-insensitive substring search that treats the user's `%` and `_` as plain characters."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, or_


def like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def contains(column: Any, term: str) -> ColumnElement[bool]:
    return column.ilike(like_pattern(term), escape="\\")


def contains_any(columns: list[Any], term: str) -> ColumnElement[bool]:
    return or_(*(contains(column, term) for column in columns))
