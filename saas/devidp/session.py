"""The IdP's single sign-on session: an opaque cookie, stored server-side only as a hash.

The cookie is named ``devidp_session``, never something generic: browsers share cookies
between 127.0.0.1:8000 (the app) and 127.0.0.1:8001 (this server), since cookies ignore ports.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import Cookie
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.devidp.context import SESSION_COOKIE, SESSION_TTL_SECONDS, DevIdp
from saas.devidp.ids import opaque_token, random_id, sha256_hex
from saas.devidp.models import IdpSession, User


async def current_session(
    request: Request[Any, Any, Any], db: AsyncSession, now: float
) -> tuple[IdpSession, User] | None:
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    session = await db.scalar(select(IdpSession).where(IdpSession.cookie_hash == sha256_hex(raw)))
    if session is None or session.expires_at <= now:
        return None
    user = await db.get(User, session.user_id)
    if user is None:
        return None
    return session, user


async def start_session(
    idp: DevIdp,
    request: Request[Any, Any, Any],
    db: AsyncSession,
    user: User,
    connection: str,
    now: float,
) -> tuple[IdpSession, Cookie]:
    """A fresh session (new id and cookie) on every sign-in; any previous one is dropped."""
    await end_session(request, db)
    raw = opaque_token()
    session = IdpSession(
        id=random_id("", 32),
        cookie_hash=sha256_hex(raw),
        user_id=user.user_id,
        connection=connection,
        auth_time=now,
        expires_at=now + SESSION_TTL_SECONDS,
    )
    db.add(session)
    user.last_login = now
    user.logins_count += 1
    await db.flush()
    return session, session_cookie(idp, raw)


async def end_session(request: Request[Any, Any, Any], db: AsyncSession) -> None:
    raw = request.cookies.get(SESSION_COOKIE)
    if raw:
        await db.execute(delete(IdpSession).where(IdpSession.cookie_hash == sha256_hex(raw)))


def session_cookie(idp: DevIdp, value: str) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value=value,
        path="/",
        httponly=True,
        samesite="lax",
        secure=idp.cookie_secure,
        max_age=SESSION_TTL_SECONDS,
    )


def clear_session_cookie(idp: DevIdp) -> Cookie:
    return Cookie(
        key=SESSION_COOKIE,
        value="",
        path="/",
        httponly=True,
        samesite="lax",
        secure=idp.cookie_secure,
        max_age=0,
        expires=0,
    )
