"""Lists through Advanced Alchemy's filters, with this app's two choices made here, once.

- Search is a case-insensitive substring match in which the user's `%` and `_` are plain
  characters: "50%" finds "50% off", not "500 days". Advanced Alchemy's `SearchFilter` leaves
  them LIKE wildcards unless told (`escape_wildcards=True`), so every search is built by
  `text_search`, never inline.
- An offset page is read with `get_many_and_count` (Advanced Alchemy's name, since 1.10, for
  `list_and_count`) and counted with its own statement, not the default window function: that
  count is read from the page's rows, so an offset past the end would report a total of 0
  instead of the list's size.

Keyset-paged lists (members, the audit log: saas/db/keyset.py) search with `text_search` too.
"""

from __future__ import annotations

from typing import Any, TypeVar

from advanced_alchemy.filters import LimitOffset, SearchFilter, StatementFilter
from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from advanced_alchemy.service import OffsetPagination
from sqlalchemy import ColumnElement

ModelT = TypeVar("ModelT", bound=Any)


def text_search(fields: str | set[str], term: str) -> SearchFilter:
    """Rows where any of `fields` contains `term`, ignoring case, wildcards taken literally."""
    return SearchFilter(field_name=fields, value=term, ignore_case=True, escape_wildcards=True)


async def offset_page(
    repository: SQLAlchemyAsyncRepository[ModelT],
    *filters: StatementFilter | ColumnElement[bool],
    limit: int,
    offset: int,
) -> OffsetPagination[ModelT]:
    """One page of the repository's rows (scoped, for a tenant repository) and their total.
    `filters` must include an `OrderBy` ending in a unique column, so pages never overlap."""
    rows, total = await repository.get_many_and_count(
        *filters, LimitOffset(limit=limit, offset=offset), count_with_window_function=False
    )
    return OffsetPagination(items=list(rows), limit=limit, offset=offset, total=total)
