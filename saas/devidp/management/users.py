"""Users (read only) and the organizations a user belongs to."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.params import FromPath
from sqlalchemy.ext.asyncio import AsyncSession

from saas.devidp import store
from saas.devidp.context import Db
from saas.devidp.management import shapes
from saas.devidp.management.common import not_found, offset_page
from saas.devidp.models import User


async def _user(db: AsyncSession, user_id: str) -> User:
    user = await db.get(User, user_id)
    if user is None:
        raise not_found("The user does not exist.", "inexistent_user")
    return user


@get("/users/{user_id:str}", opt={"scopes": ("read:users",)})
async def get_user(user_id: FromPath[str], db: Db) -> dict[str, Any]:
    user = await _user(db, user_id)
    conn = await store.connection_by_name(db, user.connection)
    return shapes.user(user, conn.strategy if conn else "auth0")


@get("/users/{user_id:str}/organizations", opt={"scopes": ("read:users", "read:organizations")})
async def get_user_organizations(
    user_id: FromPath[str], request: Request[Any, Any, Any], db: Db
) -> Any:
    await _user(db, user_id)
    orgs = await store.user_organizations(db, user_id)
    return offset_page(request.query_params, orgs, "organizations", shapes.organization)
