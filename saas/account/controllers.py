"""/account/sessions: a signed-in person's own sessions, each ended from here, or all others.

Sessions are listed from the session store's per-user index (saas.login.session_directory).
Each is named on the page by a digest of its id, never the id: the id is the bearer secret of
the browser that holds it.
"""

from __future__ import annotations

import datetime
import hashlib
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.datastructures import CacheControlHeader
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.plugins.flash import flash
from litestar.response import Redirect, Template
from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.actions import AuditAction
from saas.audit.services import AuditService
from saas.config import Settings
from saas.db.models import User
from saas.login.current_user import actor_from, load_current_user, memberships_of
from saas.login.redirects import sign_in_location
from saas.login.session_directory import SessionDirectory, SessionSummary
from saas.login.sessions import session_cookie_name
from saas.services import ACCOUNT_SERVICES
from saas.tenancy.context import SignInRequired
from saas.web.input import SingleLine


def handle_of(session_id: str) -> str:
    """The name a session has on the page: not its id, from which nothing can be worked back."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:32]


def _when(timestamp: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)


class EndForm(Struct):
    session: SingleLine = ""


async def _signed_in(request: Request[Any, Any, Any], db: AsyncSession) -> User:
    user = await load_current_user(request, db)
    if user is None:
        raise SignInRequired(sign_in_location("/login", request.url.path, request.url.query))
    return user


class AccountController(Controller):
    path = "/account"
    include_in_schema = False
    cache_control = CacheControlHeader(no_store=True)
    dependencies = ACCOUNT_SERVICES

    @get("/sessions", name="account.sessions")
    async def sessions_page(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
    ) -> Template:
        user = await _signed_in(request, db_session)
        current = request.cookies.get(session_cookie_name(settings), "")
        sessions = await SessionDirectory.of(request.app).sessions_of(user.id)
        memberships = await memberships_of(db_session, user)
        names = {str(m.organization.id): m.organization.display_name for m in memberships}
        rows = [
            {
                "handle": handle_of(s.session_id),
                "device": s.device,
                "address": s.address,
                "created_at": _when(s.created_at),
                "last_seen_at": _when(s.last_seen_at),
                "organization": names.get(s.organization_id or "", ""),
                "current": s.session_id == current,
            }
            for s in sessions
        ]
        rows.sort(key=lambda row: not row["current"])
        return Template(
            "pages/account_sessions.html",
            context={"user": user, "memberships": memberships, "sessions": rows},
        )

    @post("/sessions/end", name="account.sessions.end", status_code=303)
    async def end_one(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
        audit_service: NamedDependency[AuditService],
        data: Annotated[EndForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Redirect:
        user = await _signed_in(request, db_session)
        directory = SessionDirectory.of(request.app)
        sessions = await directory.sessions_of(user.id)
        chosen = [s for s in sessions if handle_of(s.session_id) == data.session]
        if not chosen:
            flash(request, "That session has ended already.", "info")
            return Redirect(path=request.app.route_reverse("account.sessions"), status_code=303)
        current = request.cookies.get(session_cookie_name(settings), "")
        ended = await self._end(request, audit_service, user, directory, chosen, "signed_out")
        if chosen[0].session_id == current:
            request.clear_session()
            return Redirect(path=request.app.route_reverse("logged_out"), status_code=303)
        flash(request, f"Signed out {ended} session on {chosen[0].device}.", "success")
        return Redirect(path=request.app.route_reverse("account.sessions"), status_code=303)

    @post("/sessions/end-others", name="account.sessions.end_others", status_code=303)
    async def end_others(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        settings: NamedDependency[Settings],
        audit_service: NamedDependency[AuditService],
    ) -> Redirect:
        user = await _signed_in(request, db_session)
        directory = SessionDirectory.of(request.app)
        current = request.cookies.get(session_cookie_name(settings), "")
        others = [s for s in await directory.sessions_of(user.id) if s.session_id != current]
        ended = await self._end(request, audit_service, user, directory, others, "signed_out")
        noun = "session" if ended == 1 else "sessions"
        flash(request, f"Signed out {ended} other {noun}.", "success")
        return Redirect(path=request.app.route_reverse("account.sessions"), status_code=303)

    @staticmethod
    async def _end(
        request: Request[Any, Any, Any],
        audit: AuditService,
        user: User,
        directory: SessionDirectory,
        sessions: list[SessionSummary],
        reason: str,
    ) -> int:
        # The store first: an audit entry must not claim a sign-out that did not happen. The
        # entries are committed with the answer (saas.web.commit).
        ended = set(await directory.end(user.id, [s.session_id for s in sessions]))
        for summary in sessions:
            if summary.session_id not in ended:
                continue
            await audit.record(
                AuditAction.SESSION_ENDED,
                actor=actor_from(request, user),
                organization_id=None,
                target_type="user",
                target_id=user.id,
                details={
                    "reason": reason,
                    "device": summary.device,
                    "session": handle_of(summary.session_id)[:12],
                },
            )
        return len(ended)
