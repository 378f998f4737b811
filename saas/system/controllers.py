"""Health check, the public home page, the header's account menu as a fragment, the icon."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import structlog
from litestar import Controller, Request, get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import Redirect, Response, Template
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from saas.config import Settings
from saas.db.models import User
from saas.login.current_user import (
    MembershipView,
    active_organization_id,
    load_current_user,
    memberships_of,
)
from saas.login.sessions import SESSION_STORE
from saas.stores import StoreUnavailable

logger = structlog.get_logger("saas.health")


class SystemController(Controller):
    include_in_schema = False

    @get("/health", name="health", cache=False, opt={"public": True})
    async def health(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
    ) -> Response[dict[str, Any]]:
        checks = {"database": await _database_check(db_session)}
        if settings.redis_url:
            # Sessions and sign-in rate limits live there: without it no page that needs a
            # session, and no sign-in, can be served.
            checks["redis"] = await _store_check(request, "redis")
        healthy = all(result == "ok" for result in checks.values())
        body = {"status": "ok" if healthy else "unavailable", "checks": checks}
        return Response(body, status_code=HTTP_200_OK if healthy else HTTP_503_SERVICE_UNAVAILABLE)

    @get("/", name="home", opt={"public": True}, cache=False)
    async def home(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
    ) -> Template:
        """Signed out: what this is and a sign-in button. Signed in: the same header as every
        page, and the way back into the person's organization."""
        context = await _signed_in_context(request, db_session)
        return Template(
            template_name="pages/home.html",
            context={
                **context,
                "show_demo_hint": settings.uses_dev_idp,
                "idp_url": settings.auth0_base_url,
            },
        )

    @get("/account/nav", name="account.nav", opt={"public": True}, cache=False)
    async def account_nav(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        back: FromQuery[bool] = False,
    ) -> Template:
        """The header's account menu for pages rendered where no one loaded the person (error
        pages: the router's own 404 runs before any session is read). With `back`, also the
        error page's way back, to the person's organization rather than away from it."""
        context = await _signed_in_context(request, db_session)
        return Template(
            template_name="partials/account_nav_fragment.html",
            context={**context, "back": back},
        )

    @get("/favicon.ico", name="favicon", opt={"public": True}, include_in_schema=False)
    async def favicon(self) -> Redirect:
        # Browsers ask for /favicon.ico on their own (the dev IdP's pages, a JSON answer); the
        # pages themselves name the static icon.
        return Redirect(path="/static/favicon.svg", status_code=301)


async def _signed_in_context(
    request: Request[Any, Any, Any], db_session: AsyncSession
) -> dict[str, Any]:
    """Who is signed in, their organizations, and the one to go back to (the session's active
    organization while they are still its member, else the chooser)."""
    user: User | None = await load_current_user(request, db_session)
    if user is None:
        return {"user": None, "memberships": [], "back_to": None}
    memberships: list[MembershipView] = [
        m for m in await memberships_of(db_session, user) if m.organization.is_active
    ]
    active = active_organization_id(request)
    current = next((m for m in memberships if m.organization.id == active), None)
    return {"user": user, "memberships": memberships, "back_to": current}


# A store that does not answer in this time is as good as down for a page waiting on it.
STORE_CHECK_TIMEOUT_SECONDS = 2.0
HEALTH_KEY_SECONDS = 10


async def _database_check(db_session: AsyncSession) -> str:
    try:
        await db_session.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as error:
        logger.warning("health_database_failed", error=type(error).__name__)
        return "failed"
    return "ok"


async def _store_check(request: Request[Any, Any, Any], name: str) -> str:
    # A write and a read through the store's own client, as every signed-in page makes: a
    # store that still answers reads but refuses writes (Redis out of memory, a read-only
    # replica) fails every sign-in and every session save. A key of its own per check, so
    # concurrent checks cannot read each other's value; it expires by itself.
    key, value = f"health:{uuid.uuid4().hex}", uuid.uuid4().bytes
    store = request.app.stores.get(SESSION_STORE)
    try:
        async with asyncio.timeout(STORE_CHECK_TIMEOUT_SECONDS):
            await store.set(key, value, expires_in=HEALTH_KEY_SECONDS)
            read = await store.get(key)
            await store.delete(key)
    except (RedisError, StoreUnavailable, OSError, TimeoutError) as error:
        logger.warning("health_store_failed", store=name, error=type(error).__name__)
        return "failed"
    if read != value:
        logger.warning("health_store_failed", store=name, error="read back a different value")
        return "failed"
    return "ok"
