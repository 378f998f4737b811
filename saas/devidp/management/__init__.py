"""The Management API subset under ``/api/v2/`` (bearer M2M tokens, per-endpoint scopes)."""

from __future__ import annotations

from typing import Any

import anyio
from litestar import Request, Response, Router

from saas.devidp.context import get_idp
from saas.devidp.errors import management_body
from saas.devidp.management import (
    catalog,
    invitations,
    members,
    organizations,
    sessions,
    users,
)
from saas.devidp.management.auth import management_guard
from saas.devidp.management.rate_limit import RateLimitHeaders, rate_limit_headers


async def inject_faults(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """Apply a test-configured fault (see ``saas.devidp.faults``) before the real handler."""
    idp = get_idp(request.app.state)
    fault = idp.faults.take(request.method, request.url.path)
    if fault is None:
        return None
    if fault.kind == "hang":
        await anyio.sleep(fault.hang_seconds)
        return None
    if fault.kind == "429":
        headers = rate_limit_headers(idp.rate_limit.limit, 0, int(idp.clock()) + fault.reset_after)
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        return Response(
            management_body(429, "Global limit has been reached", "too_many_requests"),
            status_code=429,
            headers=headers,
        )
    return Response(
        management_body(500, "Internal Server Error", "internal_error"), status_code=500
    )


def management_router() -> Router:
    return Router(
        path="/api/v2",
        guards=[management_guard],
        before_request=inject_faults,
        middleware=[RateLimitHeaders()],
        opt={"exclude_from_csrf": True},
        route_handlers=[
            organizations.create_organization,
            organizations.list_organizations,
            organizations.get_organization,
            organizations.get_organization_by_name,
            organizations.update_organization,
            organizations.delete_organization,
            organizations.list_enabled_connections,
            organizations.add_enabled_connection,
            organizations.get_enabled_connection,
            organizations.update_enabled_connection,
            organizations.remove_enabled_connection,
            members.list_members,
            members.add_members,
            members.remove_members,
            members.list_member_roles,
            members.add_member_roles,
            members.remove_member_roles,
            invitations.create_invitation,
            invitations.list_invitations,
            invitations.get_invitation,
            invitations.delete_invitation,
            catalog.list_roles,
            catalog.list_connections,
            catalog.create_connection,
            catalog.get_connection,
            catalog.update_connection,
            users.get_user,
            users.get_user_organizations,
            sessions.revoke_session,
            sessions.delete_session,
        ],
    )
