"""The two tenant routers. A handler registered on one of them is tenant-scoped with nothing
to remember: the router resolves the caller's tenant context before the handler runs (a
non-member gets 404), provides it as `tenant`, and marks every answer private.

- `dashboard_router`: `/o/{slug}/...`, the member comes from the server-side session.
- `api_router`: `/api/v1/orgs/{org}/...`, the member comes from a verified access token.

Each router carries its resolver in `opt` (`TENANT_RESOLVER`), so guards and the `tenant`
dependency use the one that router declares, never a guess from the path. Routes that need more
than membership add `guards=[requires(Permission.X)]` (`saas.tenancy.guards`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from litestar import Router, post
from litestar.datastructures import CacheControlHeader
from litestar.di import Provide
from litestar.types import ControllerRouterHandler, ExceptionHandlersMap

from saas.tenancy.context import TenantContext
from saas.tenancy.guards import (
    TENANT_RESOLVER,
    member_of_tenant,
    provide_api_tenant,
    provide_dashboard_tenant,
    requires,
    resolve_api_tenant_of,
    resolve_browser_tenant_of,
)
from saas.tenancy.permissions import Permission

# Tenant data must not linger in shared or browser caches.
PRIVATE = CacheControlHeader(no_store=True)
# `opt` keys: the edge (saas.web.security) keeps `private` answers out of every cache, and the
# error handlers (saas.web.errors) answer `api` routes with JSON problems.
PRIVATE_OPT = "private"
API_OPT = "api"


def _tenant_router(
    path: str,
    resolver: object,
    provide_tenant: Callable[..., Awaitable[TenantContext]],
    route_handlers: Sequence[ControllerRouterHandler],
    dependencies: Mapping[str, Provide],
    exception_handlers: ExceptionHandlersMap | None,
    *,
    api: bool,
    **options: Any,
) -> Router:
    return Router(
        path=path,
        route_handlers=list(route_handlers),
        dependencies={"tenant": Provide(provide_tenant), **dependencies},
        guards=[member_of_tenant],
        opt={TENANT_RESOLVER: resolver, PRIVATE_OPT: True, API_OPT: api},
        cache_control=PRIVATE,
        exception_handlers=exception_handlers or {},
        **options,
    )


def dashboard_router(
    route_handlers: Sequence[ControllerRouterHandler],
    *,
    dependencies: Mapping[str, Provide] | None = None,
    exception_handlers: ExceptionHandlersMap | None = None,
) -> Router:
    """`/o/{slug}`: the browser's tenant pages and htmx fragments."""
    return _tenant_router(
        "/o/{slug:str}",
        resolve_browser_tenant_of,
        provide_dashboard_tenant,
        route_handlers,
        dependencies or {},
        exception_handlers,
        api=False,
        include_in_schema=False,
    )


def api_router(
    route_handlers: Sequence[ControllerRouterHandler],
    *,
    dependencies: Mapping[str, Provide] | None = None,
    exception_handlers: ExceptionHandlersMap | None = None,
) -> Router:
    """`/api/v1/orgs/{org}`: the JSON API, bearer tokens only (`org` is a slug or an Auth0
    organization id)."""
    return _tenant_router(
        "/api/v1/orgs/{org:str}",
        resolve_api_tenant_of,
        provide_api_tenant,
        route_handlers,
        dependencies or {},
        exception_handlers,
        api=True,
        security=[{"BearerToken": []}],
    )


def form_post(path: str, *, name: str, permission: Permission, **options: Any) -> post:
    """A dashboard form's POST: guarded by the permission it must name (there is no way to
    leave it out), and answered 200, the status htmx swaps, also when it creates something."""
    return post(path, name=name, guards=[requires(permission)], status_code=200, **options)
