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

from saas.account.services import revocations_of, revoke_ended
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


def _auth0_note(settings: Settings, ended: int, revoking: int) -> str:
    """What the sign-out means at Auth0, in words: never more than what was done."""
    if not ended:
        return ""
    browsers = "that browser" if ended == 1 else "those browsers"
    if not settings.auth0_revoke_sessions:
        return (
            f" Sign-ins at Auth0 are not ended from here, so {browsers} may sign in again "
            "without a password until the Auth0 session ends."
        )
    if revoking < ended:
        return (
            f" Auth0 did not say which of its sessions {browsers} came from, so it may sign "
            "in again without a password until that Auth0 session ends."
            if revoking == 0
            else " Some of them may sign in again without a password until their Auth0 "
            "session ends: Auth0 did not say which of its sessions they came from."
        )
    return " Auth0 is being asked to end the sign-in there too."


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
            context={
                "user": user,
                "memberships": memberships,
                "sessions": rows,
                "revokes_at_auth0": settings.auth0_revoke_sessions,
                "revocations": await revocations_of(db_session, user.id),
            },
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
        ended, revoking = await self._end(
            request, db_session, settings, audit_service, user, directory, chosen, sessions
        )
        if chosen[0].session_id == current:
            request.clear_session()
            return Redirect(path=request.app.route_reverse("logged_out"), status_code=303)
        flash(
            request,
            f"Signed out {ended} session on {chosen[0].device}."
            + _auth0_note(settings, ended, revoking),
            "success",
        )
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
        sessions = await directory.sessions_of(user.id)
        others = [s for s in sessions if s.session_id != current]
        ended, revoking = await self._end(
            request, db_session, settings, audit_service, user, directory, others, sessions
        )
        noun = "session" if ended == 1 else "sessions"
        flash(
            request,
            f"Signed out {ended} other {noun}." + _auth0_note(settings, ended, revoking),
            "success",
        )
        return Redirect(path=request.app.route_reverse("account.sessions"), status_code=303)

    @staticmethod
    async def _end(
        request: Request[Any, Any, Any],
        db: AsyncSession,
        settings: Settings,
        audit: AuditService,
        user: User,
        directory: SessionDirectory,
        sessions: list[SessionSummary],
        listed: list[SessionSummary],
    ) -> tuple[int, int]:
        """End `sessions` (of the `listed` ones) in the store, audit each, and queue the
        revocation of their Auth0 sessions (saas.account.services)."""
        reason = "signed_out"
        # The store first: an audit entry must not claim a sign-out that did not happen. The
        # entries, and the revocation jobs, are committed with the answer (saas.web.commit);
        # the worker calls Auth0 after that commit, never inside it.
        ended = set(await directory.end(user.id, [s.session_id for s in sessions]))
        revoking = 0
        if settings.auth0_revoke_sessions:
            revoking = revoke_ended(
                db,
                user.id,
                [s for s in sessions if s.session_id in ended],
                [s for s in listed if s.session_id not in ended],
            )
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
        return len(ended), revoking
