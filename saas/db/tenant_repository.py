"""A repository that cannot be built without an organization id.

Every query it runs starts from `SELECT ... WHERE organization_id = :org`, and every row it adds
is stamped with that organization: a forgotten filter is impossible, not merely tested.
Copy this pattern for new tenant data (see the README, "Adding a tenant-scoped resource").
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar
from uuid import UUID

from advanced_alchemy.repository import SQLAlchemyAsyncRepository
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped


class TenantOwned(Protocol):
    organization_id: Mapped[UUID]


TenantModelT = TypeVar("TenantModelT", bound=Any)


class TenantScopedRepository(SQLAlchemyAsyncRepository[TenantModelT]):
    def __init__(self, *, session: AsyncSession, organization_id: UUID, **kwargs: Any) -> None:
        if not isinstance(organization_id, UUID):
            msg = "a tenant-scoped repository needs the organization's UUID"
            raise TypeError(msg)
        if kwargs.pop("statement", None) is not None:
            msg = "a tenant-scoped repository builds its own base statement"
            raise TypeError(msg)
        model = self.model_type
        super().__init__(
            session=session,
            statement=select(model).where(model.organization_id == organization_id),
            **kwargs,
        )
        self.organization_id = organization_id

    def _stamp(self, data: TenantModelT) -> TenantModelT:
        data.organization_id = self.organization_id
        return data

    async def add(self, data: TenantModelT, **kwargs: Any) -> TenantModelT:
        return await super().add(self._stamp(data), **kwargs)

    async def add_many(self, data: list[TenantModelT], **kwargs: Any) -> list[TenantModelT]:
        return list(await super().add_many([self._stamp(item) for item in data], **kwargs))
