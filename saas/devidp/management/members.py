"""Organization members and their organization roles."""

from __future__ import annotations

from typing import Any

from litestar import Request, delete, get, post
from litestar.datastructures import State
from litestar.params import FromPath
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.devidp import store
from saas.devidp.context import Db, get_idp
from saas.devidp.errors import ManagementError
from saas.devidp.management import shapes
from saas.devidp.management.common import (
    checkpoint_page,
    json_object,
    not_found,
    offset_page,
    string_list,
    uses_checkpoint,
)
from saas.devidp.management.organizations import get_org
from saas.devidp.models import MemberRole, Membership, Role, User

MAX_MEMBERS_PER_REQUEST = 10  # Auth0's limit for adding/removing members in one call
MAX_ROLES_PER_REQUEST = 10


@get("/organizations/{org_id:str}/members", opt={"scopes": ("read:organization_members",)})
async def list_members(org_id: FromPath[str], request: Request[Any, Any, Any], db: Db) -> Any:
    await get_org(db, org_id)
    query = request.query_params
    fields = {f.strip() for f in (query.get("fields") or "").split(",") if f.strip()}
    with_roles = "roles" in fields
    if with_roles:
        granted = set(str(request.state.management_claims.get("scope", "")).split())
        if "read:organization_member_roles" not in granted:
            raise ManagementError(
                403,
                "Insufficient scope, expected any of: read:organization_member_roles",
                "insufficient_scope",
            )
    users = list(
        await db.scalars(
            select(User)
            .join(Membership, Membership.user_id == User.user_id)
            .where(Membership.organization_id == org_id)
            .order_by(User.user_id)
        )
    )
    roles: dict[str, list[Role]] = {}
    if with_roles:
        for user in users:
            roles[user.user_id] = await store.member_roles(db, org_id, user.user_id)

    def render(user: User) -> dict[str, Any]:
        return shapes.member(user, roles.get(user.user_id) if with_roles else None)

    if uses_checkpoint(query):
        return checkpoint_page(query, users, "members", lambda u: u.user_id, render)
    return offset_page(query, users, "members", render, checkpoint=True)


async def _member_ids(request: Request[Any, Any, Any]) -> list[str]:
    body = await json_object(request, allowed={"members"}, required=("members",))
    return string_list(body, "members", min_items=1, max_items=MAX_MEMBERS_PER_REQUEST)


@post(
    "/organizations/{org_id:str}/members",
    opt={"scopes": ("create:organization_members",)},
    status_code=204,
)
async def add_members(
    org_id: FromPath[str], request: Request[Any, Any, Any], db: Db, state: State
) -> None:
    await get_org(db, org_id)
    user_ids = await _member_ids(request)
    for user_id in user_ids:
        # Auth0 only adds existing users; invitations are for people without an account.
        if await db.get(User, user_id) is None:
            raise not_found(f"The user does not exist: {user_id}", "inexistent_user")
    now = get_idp(state).clock()
    for user_id in user_ids:
        await store.add_membership(db, org_id, user_id, now)
    await db.commit()


@delete(
    "/organizations/{org_id:str}/members",
    opt={"scopes": ("delete:organization_members",)},
    status_code=204,
)
async def remove_members(org_id: FromPath[str], request: Request[Any, Any, Any], db: Db) -> None:
    await get_org(db, org_id)
    for user_id in await _member_ids(request):
        await store.remove_membership(db, org_id, user_id)
    await db.commit()


async def _member(db: AsyncSession, org_id: str, user_id: str) -> None:
    await get_org(db, org_id)
    if not await store.is_member(db, org_id, user_id):
        raise not_found("The user is not a member of the organization", "inexistent_member")


async def _role_ids(request: Request[Any, Any, Any], db: AsyncSession) -> list[str]:
    body = await json_object(request, allowed={"roles"}, required=("roles",))
    role_ids = string_list(body, "roles", min_items=1, max_items=MAX_ROLES_PER_REQUEST)
    for role_id in role_ids:
        if await db.get(Role, role_id) is None:
            raise not_found(f"The role does not exist: {role_id}", "inexistent_role")
    return role_ids


@get(
    "/organizations/{org_id:str}/members/{user_id:str}/roles",
    opt={"scopes": ("read:organization_member_roles",)},
)
async def list_member_roles(
    org_id: FromPath[str], user_id: FromPath[str], request: Request[Any, Any, Any], db: Db
) -> Any:
    await _member(db, org_id, user_id)
    roles = await store.member_roles(db, org_id, user_id)
    return offset_page(request.query_params, roles, "roles", shapes.role)


@post(
    "/organizations/{org_id:str}/members/{user_id:str}/roles",
    opt={"scopes": ("create:organization_member_roles",)},
    status_code=204,
)
async def add_member_roles(
    org_id: FromPath[str], user_id: FromPath[str], request: Request[Any, Any, Any], db: Db
) -> None:
    await _member(db, org_id, user_id)
    await store.add_member_roles(db, org_id, user_id, await _role_ids(request, db))
    await db.commit()


@delete(
    "/organizations/{org_id:str}/members/{user_id:str}/roles",
    opt={"scopes": ("delete:organization_member_roles",)},
    status_code=204,
)
async def remove_member_roles(
    org_id: FromPath[str], user_id: FromPath[str], request: Request[Any, Any, Any], db: Db
) -> None:
    await _member(db, org_id, user_id)
    for role_id in await _role_ids(request, db):
        link = await db.get(MemberRole, (org_id, user_id, role_id))
        if link is not None:
            await db.delete(link)
    await db.commit()
