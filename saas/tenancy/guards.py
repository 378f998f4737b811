"""Route guards that ask for a permission, never a role name.

`requires(Permission.MEMBERS_INVITE)` resolves the tenant context (once per request, cached on
the connection) and refuses with 403 when the member's role -- and, for API calls, the access
token's permissions -- do not grant it. Its `permission` attribute lets the route matrix test
read each route's requirement from the route table.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler
from litestar.params import FromPath
from sqlalchemy.ext.asyncio import AsyncSession

from saas.errors import Forbidden, NotFound
from saas.login.current_user import load_current_user
from saas.login.redirects import sign_in_location
from saas.tenancy.context import TENANT_STATE_KEY, SignInRequired, TenantContext
from saas.tenancy.permissions import Permission
from saas.tenancy.resolver import resolve_api_tenant, resolve_tenant

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Awaitable[None]]


def db_session_of(connection: ASGIConnection[Any, Any, Any, Any]) -> AsyncSession:
    """The request's own SQLAlchemy session, the same one handlers receive as `db_session`."""
    config = connection.app.state["db_config"]
    return config.provide_session(connection.app.state, connection.scope)


@asynccontextmanager
async def read_before_body(
    connection: ASGIConnection[Any, Any, Any, Any],
) -> AsyncIterator[AsyncSession]:
    """The request's session for a guard's reads; the transaction they open ends with them.
    One that was open already (not the guard's) is left alone."""
    db = db_session_of(connection)
    opened_here = not db.in_transaction()
    try:
        yield db
    except BaseException:
        if opened_here and db.in_transaction():
            await db.rollback()
        raise
    if opened_here and db.in_transaction():
        # Read-only, so committing writes nothing; unlike a rollback it keeps what was read
        # loaded for the handler.
        await db.commit()


# The key under which a tenant router's `opt` names its resolver (see saas.tenancy.routers).
TENANT_RESOLVER = "tenant_resolver"
TenantResolver = Callable[
    [ASGIConnection[Any, Any, Any, Any], AsyncSession], Awaitable[TenantContext]
]


async def resolve_browser_tenant_of(
    connection: ASGIConnection[Any, Any, Any, Any], db: AsyncSession
) -> TenantContext:
    return await resolve_tenant(connection.path_params["slug"], connection, db)


async def resolve_api_tenant_of(
    connection: ASGIConnection[Any, Any, Any, Any], db: AsyncSession
) -> TenantContext:
    return await resolve_api_tenant(
        connection.path_params["org"],
        connection,
        db,
        connection.app.state["provider"],
        connection.app.state["settings"],
    )


def _resolver_of(connection: ASGIConnection[Any, Any, Any, Any]) -> TenantResolver:
    resolver = connection.route_handler.opt.get(TENANT_RESOLVER)
    if resolver is None:
        # A programming error, not a request to refuse: the route is outside both tenant routers.
        raise RuntimeError(
            f"{connection.route_handler} asks for a tenant but is not registered on a tenant "
            "router (saas.tenancy.routers)"
        )
    return resolver


async def tenant_for(connection: ASGIConnection[Any, Any, Any, Any]) -> TenantContext:
    """The request's tenant context, resolved once by its router's resolver and cached."""
    cached = connection.state.get(TENANT_STATE_KEY)
    if isinstance(cached, TenantContext):
        return cached
    resolver = _resolver_of(connection)
    async with read_before_body(connection) as db:
        tenant = await resolver(connection, db)
    connection.state[TENANT_STATE_KEY] = tenant
    return tenant


async def member_of_tenant(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """The tenant routers' own guard: any route on them is for the organization's members."""
    await tenant_for(connection)


def requires(permission: Permission) -> Guard:
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        tenant = await tenant_for(connection)
        if not tenant.can(permission):
            raise Forbidden(f"Your role does not allow this ({permission}).")

    guard.permission = permission  # type: ignore[attr-defined]
    guard.__name__ = f"requires_{permission.value.replace(':', '_')}"
    return guard


async def requires_platform_operator(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    async with read_before_body(connection) as db:
        user = await load_current_user(connection, db)
    if user is None:
        raise SignInRequired(sign_in_location("/login", connection.url.path, connection.url.query))
    if not user.is_platform_operator:
        # Operator routes do not exist for anyone else.
        raise NotFound("There is nothing here.")


# The `tenant` dependency of each router: the tenant context its guard already resolved. Each
# names its router's path parameter, so Litestar parses it with the request: a handler's
# signature model lists the route's path parameters, and one that nothing asked for would be
# reported missing beside any other invalid parameter (a phantom `org` in the API's 422).


async def provide_dashboard_tenant(
    request: Request[Any, Any, Any], slug: FromPath[str]
) -> TenantContext:
    return await tenant_for(request)


async def provide_api_tenant(request: Request[Any, Any, Any], org: FromPath[str]) -> TenantContext:
    return await tenant_for(request)
