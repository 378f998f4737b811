"""A repository that cannot be built without an organization id, and cannot leave it.

Every query it runs starts from `SELECT ... WHERE organization_id = :org`, every row it adds is
stamped with that organization, and no row can be moved to another one: a forgotten filter is
impossible, not merely tested. Copy this pattern for new tenant data (see the README, "Adding a
tenant-scoped resource").

It is total: each public method of Advanced Alchemy's `SQLAlchemyAsyncRepository` is either
scoped here (overridden below), or named in `ROW_FREE_METHODS` because it touches no rows. The
base class's bulk paths (`delete_many`, `update_many`, `upsert_many`) build their own statements
from the bare table, so they are re-implemented on the scoped single-row ones.
`tests/integration/test_tenant_repository.py` fails on any public method of the installed
library that is neither, so an upgrade cannot add an unscoped way in.

A row names its organization by `organization_id` or, where the model has one, by its
`organization` relationship (which the flush copies into `organization_id`): both are checked.
The flush checks again, once the relationships have been copied: a row added through a
scoped repository must be inserted with its organization, and no row of a scoped model ever
moves to another organization, whatever set it.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar
from uuid import UUID

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import Select, event, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession, async_scoped_session
from sqlalchemy.orm import Mapped, Mapper, RelationshipProperty
from sqlalchemy.sql.util import surface_selectables


class TenantOwned(Protocol):
    organization_id: Mapped[UUID]


TenantModelT = TypeVar("TenantModelT", bound=Any)

# Public members of the base repository that read or write no rows: helpers on instances and
# keys, the health check (`SELECT 1`), and the not-found check.
ROW_FREE_METHODS = frozenset(
    {
        "check_health",
        "check_not_found",
        "get_id_attribute_value",
        "set_id_attribute_value",
        "get_primary_key_value",
        "has_primary_key_values",
        "has_composite_pk",
        "pk_attr_names",
    }
)


class TenantScopeError(RuntimeError):
    """A call that would reach or move another organization's rows. Always a programming
    error (requests never choose the organization of a row), so it is not a 4xx."""


# Where a row added through a scoped repository keeps that repository's organization (the
# instance's `InstanceState.info`), for the flush to check.
_SCOPE_KEY = "tenant_scope_organization_id"
# Models with a scoped repository: their rows never change organization.
_SCOPED_MODELS: set[type[Any]] = set()
# Repository classes whose base statement (the base class's own `select(model_type)`) has been
# checked once: it is the same for every instance, and checking a statement's FROM list
# compiles it, which cost a tenth of a members page when it ran per request.
_CHECKED_BASE_STATEMENTS: set[type[Any]] = set()


def _organization_relationships(model: type[Any]) -> builtins.list[RelationshipProperty[Any]]:
    """Relationships that set `organization_id` when the row is flushed."""
    return [
        relationship
        for relationship in inspect(model).relationships
        if any(column.key == "organization_id" for column in relationship.local_columns)
    ]


@event.listens_for(Mapper, "before_insert")
def _inserted_in_scope(_: Mapper[Any], __: Connection, target: Any) -> None:
    expected = inspect(target).info.get(_SCOPE_KEY)
    if expected is not None and target.organization_id != expected:
        msg = f"this {type(target).__name__} would be written to another organization"
        raise TenantScopeError(msg)


@event.listens_for(Mapper, "before_update")
def _stays_in_its_organization(mapper: Mapper[Any], _: Connection, target: Any) -> None:
    if mapper.class_ not in _SCOPED_MODELS:
        return
    history = inspect(target).attrs.organization_id.history
    if history.deleted and history.added != history.deleted:
        msg = f"this {type(target).__name__} would move to another organization"
        raise TenantScopeError(msg)


class TenantScopedRepository(SQLAlchemyAsyncRepository[TenantModelT]):
    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        model = cls.__dict__.get("model_type")
        if model is not None:
            _SCOPED_MODELS.add(model)

    def __init__(
        self,
        *,
        session: AsyncSession | async_scoped_session[AsyncSession],
        organization_id: UUID,
        **kwargs: Any,
    ) -> None:
        if not isinstance(organization_id, UUID):
            msg = "a tenant-scoped repository needs the organization's UUID"
            raise TypeError(msg)
        if kwargs.pop("statement", None) is not None:
            msg = "a tenant-scoped repository builds its own base statement"
            raise TypeError(msg)
        # Set before the base class assigns `statement`, which the property below scopes.
        self.organization_id = organization_id
        self._assigning_base_statement = True
        try:
            super().__init__(session=session, **kwargs)
        finally:
            self._assigning_base_statement = False
        # The library's cache is keyed by primary key alone: a row cached through any other
        # repository would come back from `get()` here whatever its organization.
        self._cache_manager = None

    # ---- the scope -----------------------------------------------------------------------

    @property
    def statement(self) -> Select[tuple[TenantModelT]]:
        return self._scoped_statement

    @statement.setter
    def statement(self, value: Select[tuple[TenantModelT]]) -> None:
        # Whoever assigns a statement (the base class, a subclass, a caller) gets it scoped.
        # The base class's own, caller-free statement is checked once per repository class.
        base = getattr(self, "_assigning_base_statement", False)
        checked = base and type(self) in _CHECKED_BASE_STATEMENTS
        self._scoped_statement = self._scope(value, check_froms=not checked)
        if base:
            _CHECKED_BASE_STATEMENTS.add(type(self))

    def _scope(self, statement: Select[Any], *, check_froms: bool = True) -> Select[Any]:
        if check_froms:
            self._check_selects_table(statement)
        return statement.where(self.model_type.organization_id == self.organization_id)

    def _check_selects_table(self, statement: Select[Any]) -> None:
        # The filter names the model's own table: a statement over an alias of it would get a
        # cross join with the filtered table instead, and every organization's rows.
        table = inspect(self.model_type).local_table
        froms = {
            selectable
            for from_ in statement.get_final_froms()
            for selectable in surface_selectables(from_)
        }
        if table not in froms:
            msg = f"a scoped statement must select from {table.name} itself, not an alias"
            raise TenantScopeError(msg)

    def _scope_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        statement = kwargs.get("statement")
        if statement is not None:
            kwargs["statement"] = self._scope(statement)
        return kwargs

    def _is_other_organization(self, related: Any) -> bool:
        if related is None:
            return False
        # From the identity key, or what is set: reading `related.id` might load it.
        state = inspect(related)
        related_id = state.identity[0] if state.identity else state.dict.get("id")
        return bool(related_id != self.organization_id)

    def _check_values(self, values: Mapping[str, Any]) -> None:
        if "organization_id" in values and values["organization_id"] != self.organization_id:
            msg = f"{self.model_type.__name__} values name another organization"
            raise TenantScopeError(msg)
        for relationship in _organization_relationships(self.model_type):
            if self._is_other_organization(values.get(relationship.key)):
                msg = f"{self.model_type.__name__} values relate to another organization"
                raise TenantScopeError(msg)

    def _stamp(self, data: TenantModelT) -> TenantModelT:
        current = getattr(data, "organization_id", None)
        if current is not None and current != self.organization_id:
            msg = f"this {self.model_type.__name__} belongs to another organization"
            raise TenantScopeError(msg)
        for relationship in _organization_relationships(type(data)):
            # Only what was set on the instance: reading the attribute could load it.
            if self._is_other_organization(data.__dict__.get(relationship.key)):
                msg = f"this {self.model_type.__name__} is related to another organization"
                raise TenantScopeError(msg)
        data.organization_id = self.organization_id
        inspect(data).info[_SCOPE_KEY] = self.organization_id
        return data

    # ---- reads ---------------------------------------------------------------------------

    async def get(self, *args: Any, **kwargs: Any) -> TenantModelT:
        kwargs["use_cache"] = False
        return await super().get(*args, **self._scope_kwargs(kwargs))

    async def get_one(self, *args: Any, **kwargs: Any) -> TenantModelT:
        return await super().get_one(*args, **self._scope_kwargs(kwargs))

    async def get_one_or_none(self, *args: Any, **kwargs: Any) -> TenantModelT | None:
        return await super().get_one_or_none(*args, **self._scope_kwargs(kwargs))

    async def count(self, *args: Any, **kwargs: Any) -> int:
        return await super().count(*args, **self._scope_kwargs(kwargs))

    async def exists(self, *args: Any, **kwargs: Any) -> bool:
        return await self.count(*args, **kwargs) > 0

    async def get_many(self, *args: Any, **kwargs: Any) -> builtins.list[TenantModelT]:
        kwargs["use_cache"] = False
        return builtins.list(await super().get_many(*args, **self._scope_kwargs(kwargs)))

    async def list(self, *args: Any, **kwargs: Any) -> builtins.list[TenantModelT]:
        kwargs["use_cache"] = False
        return builtins.list(await super().list(*args, **self._scope_kwargs(kwargs)))

    async def get_many_and_count(
        self, *args: Any, **kwargs: Any
    ) -> tuple[builtins.list[TenantModelT], int]:
        kwargs["use_cache"] = False
        rows, total = await super().get_many_and_count(*args, **self._scope_kwargs(kwargs))
        return builtins.list(rows), total

    async def list_and_count(
        self, *args: Any, **kwargs: Any
    ) -> tuple[builtins.list[TenantModelT], int]:
        kwargs["use_cache"] = False
        rows, total = await super().list_and_count(*args, **self._scope_kwargs(kwargs))
        return builtins.list(rows), total

    # ---- writes --------------------------------------------------------------------------

    async def add(self, data: TenantModelT, **kwargs: Any) -> TenantModelT:
        return await super().add(self._stamp(data), **kwargs)

    async def add_many(
        self, data: builtins.list[TenantModelT], **kwargs: Any
    ) -> builtins.list[TenantModelT]:
        return builtins.list(await super().add_many([self._stamp(item) for item in data], **kwargs))

    async def update(self, data: TenantModelT, **kwargs: Any) -> TenantModelT:
        # The base class loads the row through the scoped `get()` (another organization's id
        # is not found) and copies `data`'s attributes onto it: the organization must not be
        # one of them.
        return await super().update(self._stamp(data), **kwargs)

    async def update_many(
        self, data: builtins.list[TenantModelT] | builtins.list[dict[str, Any]], **kwargs: Any
    ) -> builtins.list[TenantModelT]:
        # The base class runs one bulk UPDATE by primary key, whatever the organization.
        auto_commit = kwargs.pop("auto_commit", None)
        items = [self.model_type(**item) if isinstance(item, dict) else item for item in data]
        updated = [await self.update(item, auto_commit=False, **kwargs) for item in items]
        await self._flush_or_commit(auto_commit=auto_commit)
        return updated

    async def upsert(self, data: TenantModelT, **kwargs: Any) -> TenantModelT:
        # The match is looked up through the scoped `get_one_or_none()`, the insert goes
        # through `add()`; a primary key of another organization's row fails the insert.
        return await super().upsert(self._stamp(data), **kwargs)

    async def upsert_many(
        self, data: builtins.list[TenantModelT], **kwargs: Any
    ) -> builtins.list[TenantModelT]:
        # The base class's native path is INSERT ... ON CONFLICT DO UPDATE on the bare table,
        # which would overwrite another organization's row with a matching key.
        auto_commit = kwargs.pop("auto_commit", None)
        for ignored in ("no_merge", "chunk_size"):
            kwargs.pop(ignored, None)
        upserted = [await self.upsert(item, auto_commit=False, **kwargs) for item in data]
        await self._flush_or_commit(auto_commit=auto_commit)
        return upserted

    async def get_or_upsert(self, *args: Any, **kwargs: Any) -> tuple[TenantModelT, bool]:
        self._check_values(kwargs)
        return await super().get_or_upsert(*args, **kwargs)

    async def get_and_update(self, *args: Any, **kwargs: Any) -> tuple[TenantModelT, bool]:
        self._check_values(kwargs)
        return await super().get_and_update(*args, **kwargs)

    async def delete(self, *args: Any, **kwargs: Any) -> TenantModelT:
        # The base class finds the row through the scoped `get()`.
        return await super().delete(*args, **kwargs)

    async def delete_where(self, *filters: Any, **kwargs: Any) -> Sequence[TenantModelT]:
        # The base class builds `DELETE FROM <table>` with only the caller's filters.
        scope = self.model_type.organization_id == self.organization_id
        return await super().delete_where(scope, *filters, **kwargs)

    async def delete_many(self, item_ids: Iterable[Any], **kwargs: Any) -> Sequence[TenantModelT]:
        # The base class deletes by primary key alone, in any organization.
        if self.has_composite_pk:
            msg = "delete_many on a composite primary key is not scoped; use delete_where"
            raise TenantScopeError(msg)
        id_attribute = kwargs.pop("id_attribute", None) or self.id_attribute
        column = (
            getattr(self.model_type, id_attribute)
            if isinstance(id_attribute, str)
            else id_attribute
        )
        for ignored in ("chunk_size",):
            kwargs.pop(ignored, None)
        return await self.delete_where(column.in_(builtins.list(item_ids)), **kwargs)
