"""Sign-in, invitation links, the callback, organization picking, and sign-out."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any
from urllib.parse import quote

import structlog
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, QueryParameter
from litestar.response import Redirect, Template
from msgspec import Struct
from sqlalchemy.ext.asyncio import AsyncSession

from saas.config import Settings
from saas.db.models import Invitation, Organization
from saas.errors import InvalidInput, NotFound
from saas.invitations.services import InvitationService, utcnow
from saas.login import errors
from saas.login.authorize import begin_login
from saas.login.callback import CallbackParams, complete_login
from saas.login.current_user import actor_from, load_current_user, memberships_of
from saas.login.discovery import route_email
from saas.login.pending import still_open, take
from saas.login.provider import OIDCProvider
from saas.login.sessions import id_token_hint, start_authenticated_session
from saas.login.sso_test import run_test_sign_in
from saas.organizations.domains import normalize_email
from saas.organizations.services import OrganizationService
from saas.services import SIGN_IN_SERVICES
from saas.web.dates import format_date
from saas.web.input import SingleLine
from saas.web.security import fresh_csrf_cookie

logger = structlog.get_logger("saas.login")


SILENT_LOGIN_FAILURES = frozenset({"login_required", "interaction_required", "consent_required"})


class LoginForm(Struct):
    email: SingleLine = ""
    next: SingleLine = ""


def _landing(request: Request[Any, Any, Any], slug: str) -> str:
    """The organization's home. The slug may come from a path anyone can type: quoted, so the
    redirect is to that one path. With the slash people see in the address bar."""
    return request.app.route_reverse("org.home", slug=quote(slug)) + "/"


async def _login_to(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    provider: OIDCProvider,
    organization: Organization | None,
    *,
    next_url: str | None,
    silent: bool = False,
    reauthenticate: bool = False,
) -> Redirect:
    """A login for one organization. The enterprise connection is only forced on users whose
    own email domain routes to it: an invited outsider (or an operator switching in) chooses
    among the organization's enabled connections at the IdP instead.

    For a name no organization has, the same redirect without one, as `POST /login` does for an
    unknown domain: the answer does not tell which organizations exist."""
    user = await load_current_user(request, db)
    connection = None
    if user is not None and organization is not None:
        route = await route_email(db, user.email)
        if route.organization is not None and route.organization.id == organization.id:
            connection = route.connection
    return await begin_login(
        request,
        provider,
        organization=organization,
        connection=connection,
        login_hint=user.email if user else None,
        next_url=next_url,
        silent=silent,
        reauthenticate=reauthenticate,
    )


def _usable_invitation(invitation: Invitation | None, org: Organization) -> Invitation:
    """The invitation, if it can still be accepted; else the refusal that says why."""
    if invitation is None:
        raise errors.InvitationInvalid
    if invitation.revoked_at is not None:
        raise errors.InvitationRevoked(
            f"An administrator of {org.display_name} withdrew this invitation, so the link no "
            "longer works. If you still need access, ask them for a new one."
        )
    if invitation.accepted_at is not None:
        raise errors.InvitationAlreadyUsed
    if invitation.expires_at <= utcnow():
        raise errors.InvitationExpired(
            f"This invitation to {org.display_name} expired on "
            f"{format_date(invitation.expires_at)}. Ask an administrator of "
            f"{org.display_name} to resend it."
        )
    return invitation


# How long an invitation link whose ticket is unknown waits while a worker is creating one of
# the organization's invitations at Auth0 (Auth0 emails the link before the worker records
# the ticket, milliseconds later).
TICKET_RECORD_WAIT_SECONDS = 3.0
_TICKET_RECORD_POLL_SECONDS = 0.2


async def _invitation_for_link(
    db_session: AsyncSession,
    invitation_service: InvitationService,
    org: Organization,
    ticket: str,
) -> Invitation | None:
    """The invitation a link's ticket opens, waiting a moment for a ticket being recorded.

    Only while a worker holds an invitation job of this organization: whether one does shows
    in nothing but a short delay, and an unknown ticket gets the same refusal either way."""
    deadline = time.monotonic() + TICKET_RECORD_WAIT_SECONDS
    while True:
        # Asked before the lookup: a record committed between the two is then still found.
        being_recorded = await invitation_service.ticket_being_recorded(org.id)
        try:
            found = await invitation_service.get_by_ticket(org.id, ticket)
        except (InvalidInput, NotFound) as error:
            raise errors.InvitationInvalid from error
        if found is not None or not being_recorded or time.monotonic() >= deadline:
            return found
        # End the read-only transaction (nothing was written: checked), so the next read sees
        # the worker's commit (SQLite keeps one snapshot per transaction) and no connection is
        # held while this waits. A commit, not a rollback: a rollback expires `org`.
        if db_session.new or db_session.dirty or db_session.deleted:
            raise RuntimeError("an invitation link waits only in a read-only transaction")
        await db_session.commit()
        await asyncio.sleep(_TICKET_RECORD_POLL_SECONDS)


class AuthController(Controller):
    include_in_schema = False
    dependencies = SIGN_IN_SERVICES

    @get("/login", name="login")
    async def login_page(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        provider: NamedDependency[OIDCProvider],
        organizations: NamedDependency[OrganizationService],
        organization: FromQuery[str | None] = None,
        next_url: Annotated[str | None, QueryParameter(name="next")] = None,
    ) -> Template | Redirect:
        if organization:
            org = await organizations.get_one_or_none(slug=organization)
            return await _login_to(request, db_session, provider, org, next_url=next_url)
        return Template("pages/login.html", context={"email": "", "next": next_url or ""})

    @post("/login", name="login.submit")
    async def login_submit(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        provider: NamedDependency[OIDCProvider],
        data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Template | Redirect:
        try:
            route = await route_email(db_session, data.email)
        except InvalidInput:
            return Template(
                "pages/login.html",
                context={
                    "email": data.email[:320],
                    "next": data.next[:2048],
                    "error": "Enter a valid email address, like name@company.com.",
                },
                status_code=422,
            )
        # Known and unknown domains both end in a redirect to the IdP with the address as a
        # hint: the response does not tell whether an account or organization exists.
        return await begin_login(
            request,
            provider,
            organization=route.organization,
            connection=route.connection,
            login_hint=data.email.strip(),
            next_url=data.next,
        )

    @get("/o/{slug:str}/login", name="login.organization")
    async def organization_login(
        self,
        slug: FromPath[str],
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        provider: NamedDependency[OIDCProvider],
        organizations: NamedDependency[OrganizationService],
        next_url: Annotated[str | None, QueryParameter(name="next")] = None,
        silent: FromQuery[bool] = False,
    ) -> Redirect:
        org = await organizations.get_one_or_none(slug=slug)
        return await _login_to(
            request,
            db_session,
            provider,
            org,
            next_url=next_url or _landing(request, slug),
            silent=silent,
        )

    @get("/invitation", name="invitation")
    async def invitation(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        provider: NamedDependency[OIDCProvider],
        organizations: NamedDependency[OrganizationService],
        invitation_service: NamedDependency[InvitationService],
        invitation: FromQuery[str],
        organization: FromQuery[str],
    ) -> Redirect:
        """Auth0-style invitation links: `?invitation=<ticket>&organization=<org id>`."""
        org = await organizations.get_one_or_none(auth0_org_id=organization)
        if org is None:
            raise errors.InvitationInvalid
        found = await _invitation_for_link(db_session, invitation_service, org, invitation)
        pending = _usable_invitation(found, org)
        # Opened in a browser where someone else is signed in: say who, and to whom it was sent,
        # instead of an IdP round trip that ends in a refusal with neither.
        signed_in = await load_current_user(request, db_session)
        if signed_in is not None and normalize_email(signed_in.email) != pending.email:
            raise errors.InvitationForSomeoneElse(
                f"You are signed in as {signed_in.email}, but this invitation to "
                f"{org.display_name} was sent to {pending.email}. Sign out, then open the "
                "invitation link again and sign in as the invited person."
            )
        # An invitee whose own domain routes to this organization goes straight to its
        # enterprise connection (and must, when the organization requires SSO).
        route = await route_email(db_session, pending.email)
        connection = (
            route.connection if route.organization and route.organization.id == org.id else None
        )
        return await begin_login(
            request,
            provider,
            organization=org,
            connection=connection,
            login_hint=pending.email,
            invitation=invitation,
            next_url=_landing(request, org.slug),
        )

    @get("/callback", name="callback")
    async def callback(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
        provider: NamedDependency[OIDCProvider],
        settings: NamedDependency[Settings],
        organizations: NamedDependency[OrganizationService],
        state_param: Annotated[str | None, QueryParameter(name="state")] = None,
        code: FromQuery[str | None] = None,
        error: FromQuery[str | None] = None,
        error_description: FromQuery[str | None] = None,
    ) -> Redirect:
        pending = take(request.session, state_param)
        if pending is None:
            raise errors.StateMismatch
        if pending.sso_test is not None:
            await run_test_sign_in(
                request.session,
                provider,
                settings,
                pending,
                CallbackParams(state_param, code, error, error_description),
            )
            return Redirect(path=pending.next_url, status_code=303)
        if pending.silent and error in SILENT_LOGIN_FAILURES:
            # Silent switching found no IdP session: fall back to an interactive sign-in.
            org = None
            if pending.auth0_org_id is not None:
                org = await organizations.get_one_or_none(auth0_org_id=pending.auth0_org_id)
                if org is None:
                    raise errors.UnknownOrganization
            return await _login_to(request, db_session, provider, org, next_url=pending.next_url)
        signed_in = await load_current_user(request, db_session) if pending.silent else None
        try:
            completed = await complete_login(
                db_session,
                settings=settings,
                provider=provider,
                pending=pending,
                params=CallbackParams(state_param, code, error, error_description),
                actor=actor_from(request, None),
                signed_in_sub=signed_in.sub if signed_in else None,
            )
        except errors.Auth0SessionEnded:
            logger.info("signed_in_from_an_ended_auth0_session")
            if pending.reauthenticate:
                # Asked to authenticate afresh, and answered from the ended session again (the
                # redirect's `prompt=login` was dropped): a page, not another round.
                raise
            org = None
            if pending.auth0_org_id is not None:
                org = await organizations.get_one_or_none(auth0_org_id=pending.auth0_org_id)
            # The provider's session was ended from "Your sessions": authenticate afresh.
            return await _login_to(
                request, db_session, provider, org, next_url=pending.next_url, reauthenticate=True
            )
        except errors.SilentSwitchToAnotherPerson:
            logger.warning("silent_login_for_another_person")
            org = None
            if pending.auth0_org_id is not None:
                org = await organizations.get_one_or_none(auth0_org_id=pending.auth0_org_id)
            # Not silent, and not the IdP's session either: the person signs in, and sees as whom.
            return await _login_to(
                request, db_session, provider, org, next_url=pending.next_url, reauthenticate=True
            )
        organization = completed.organization
        start_authenticated_session(
            request,
            user_id=str(completed.user.id),
            organization_id=str(organization.id) if organization else None,
            id_token=completed.id_token,
            mfa=completed.mfa,
            auth0_sid=completed.auth0_sid,
            carry_pending=still_open(request.session, time.time()),
        )
        logger.info(
            "login_succeeded",
            user_id=str(completed.user.id),
            organization=organization.slug if organization else None,
        )
        # A token read before sign-in must not be accepted for the signed-in person.
        rotated = [fresh_csrf_cookie(settings)]
        if organization is None:
            return Redirect(
                path=request.app.route_reverse("select_organization"),
                status_code=303,
                cookies=rotated,
            )
        next_url = completed.next_url
        if next_url == "/":
            next_url = _landing(request, organization.slug)
        return Redirect(path=next_url, status_code=303, cookies=rotated)

    @get("/select-organization", name="select_organization")
    async def select_organization(
        self,
        request: Request[Any, Any, Any],
        db_session: NamedDependency[AsyncSession],
    ) -> Template | Redirect:
        user = await load_current_user(request, db_session)
        if user is None:
            return Redirect(path=request.app.route_reverse("login"), status_code=303)
        memberships = [
            m for m in await memberships_of(db_session, user) if m.organization.is_active
        ]
        if len(memberships) == 1:
            only = memberships[0].organization
            return Redirect(
                path=request.app.route_reverse("login.organization", slug=only.slug)
                + "?silent=true",
                status_code=303,
            )
        status = 200 if memberships else 403
        return Template(
            "pages/select_organization.html",
            context={"user": user, "memberships": memberships},
            status_code=status,
        )

    @post("/logout", name="logout")
    async def logout(
        self,
        request: Request[Any, Any, Any],
        provider: NamedDependency[OIDCProvider],
        settings: NamedDependency[Settings],
    ) -> Redirect:
        hint = id_token_hint(request)  # read before the session, and the token in it, is gone
        request.clear_session()
        return Redirect(
            path=await provider.logout_url(
                settings.app_base_url + request.app.route_reverse("logged_out"),
                id_token_hint=hint,
            ),
            status_code=303,
            # The next person on this browser must not inherit a token the last one could read.
            cookies=[fresh_csrf_cookie(settings)],
        )

    @get("/logged-out", name="logged_out")
    async def logged_out(self) -> Template:
        return Template("pages/logged_out.html")
