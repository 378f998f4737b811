"""``GET/POST /userinfo``: profile claims for a bearer access token we issued to a user."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession

from saas.devidp.context import Db, get_idp
from saas.devidp.ids import iso8601, sha256_hex
from saas.devidp.models import AccessTokenRecord, TokenFamily, User


def _unauthorized(description: str) -> Response[Any]:
    return Response(
        {"error": "invalid_token", "error_description": description},
        status_code=401,
        headers={
            "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{description}"'
        },
    )


async def _userinfo(
    request: Request[Any, Any, Any], db: AsyncSession, state: State
) -> Response[Any]:
    idp = get_idp(state)
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("bearer "):
        return _unauthorized("Missing bearer access token")
    token = header[7:].strip()
    # Only tokens issued to users are recorded, so M2M tokens are refused here too.
    record = await db.get(AccessTokenRecord, sha256_hex(token))
    if record is None or record.expires_at <= idp.clock():
        return _unauthorized("Invalid or expired access token")
    family = await db.get(TokenFamily, record.family_id)
    if family is None or family.revoked:
        return _unauthorized("The access token has been revoked")
    user = await db.get(User, record.user_id)
    if user is None:
        return _unauthorized("The user no longer exists")
    scopes = set(record.scope.split())
    if "openid" not in scopes:
        return Response(
            {"error": "insufficient_scope", "error_description": "openid scope required"},
            status_code=403,
        )
    claims: dict[str, Any] = {"sub": user.user_id}
    if "profile" in scopes:
        claims.update(
            name=user.name,
            nickname=user.email.split("@", 1)[0],
            picture=user.picture,
            updated_at=iso8601(user.updated_at),
        )
    if "email" in scopes:
        claims.update(email=user.email, email_verified=user.email_verified)
    return Response(claims, headers={"Cache-Control": "no-store"})


@get("/userinfo")
async def userinfo_get(request: Request[Any, Any, Any], db: Db, state: State) -> Response[Any]:
    return await _userinfo(request, db, state)


@post("/userinfo", opt={"exclude_from_csrf": True}, status_code=200)
async def userinfo_post(request: Request[Any, Any, Any], db: Db, state: State) -> Response[Any]:
    return await _userinfo(request, db, state)
