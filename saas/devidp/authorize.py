"""``GET /authorize``: validate the request the way Auth0 does, then sign in or reuse SSO.

Order matters and follows Auth0: while the client or the redirect URI is unknown nothing is
sent anywhere (an HTML error page, status 400); once the redirect URI is known to be
registered, every later problem goes back to it as ``error``/``error_description``/``state``.

A validated request becomes a ``LoginTransaction``; its id is the ``state`` query parameter
of the sign-in pages (as in Auth0's ``/u/login?state=…``).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, get
from litestar.datastructures import Cookie, State
from litestar.response import Redirect
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.devidp import store
from saas.devidp.context import CODE_TTL_SECONDS, TRANSACTION_TTL_SECONDS, Db, DevIdp, get_idp
from saas.devidp.errors import AuthorizeRedirect, HtmlError, add_query
from saas.devidp.ids import opaque_token, random_id, sha256_hex
from saas.devidp.mfa_policy import REQUIRED, asks_for_mfa, challenge_pending, mfa_location
from saas.devidp.models import (
    AuthorizationCode,
    Connection,
    IdpSession,
    Invitation,
    LoginTransaction,
    MfaCode,
    Organization,
    TokenFamily,
    User,
)
from saas.devidp.session import current_session

_S256_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_PROMPTS = {"none", "login", "consent", "select_account"}


def _one(query: Any, name: str) -> str | None:
    values = query.getall(name, [])
    if len(values) > 1:
        raise _Repeated(name)
    value = values[0] if values else None
    return value if value not in (None, "") else None


class _Repeated(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


async def validate_request(idp: DevIdp, db: AsyncSession, query: Any, now: float) -> dict[str, Any]:
    """Turn the query string into transaction parameters, or raise the right error."""
    try:
        client_id = _one(query, "client_id")
        redirect_uri = _one(query, "redirect_uri")
    except _Repeated as exc:
        raise HtmlError(400, "Invalid request", f"The parameter {exc.name} was repeated.") from None
    client = await store.get_client(db, client_id)
    if client is None or "authorization_code" not in client.grant_types:
        raise HtmlError(
            400,
            "Unknown application",
            f"There is no interactive application with client_id {client_id or '(missing)'!r}.",
        )
    if redirect_uri is None or redirect_uri not in client.callbacks:
        # Never redirect to an unregistered URI: that would make this an open redirector.
        raise HtmlError(
            400,
            "Callback URL mismatch",
            f"The redirect_uri {redirect_uri or '(missing)'!r} is not in the list of allowed "
            f"callback URLs of the application {client.name!r}.",
        )
    state = query.get("state") or None

    def fail(error: str, description: str) -> AuthorizeRedirect:
        return AuthorizeRedirect(redirect_uri, error, description, state)

    try:
        params = {
            name: _one(query, name)
            for name in (
                "response_type",
                "response_mode",
                "scope",
                "nonce",
                "audience",
                "code_challenge",
                "code_challenge_method",
                "organization",
                "invitation",
                "connection",
                "login_hint",
                "prompt",
                "acr_values",
            )
        }
    except _Repeated as exc:
        raise fail("invalid_request", f"Parameter {exc.name} must not be repeated") from None

    if params["response_type"] is None:
        raise fail("invalid_request", "Missing required parameter: response_type")
    if params["response_type"] != "code":
        raise fail(
            "unsupported_response_type", f"Unsupported response type: {params['response_type']}"
        )
    if params["response_mode"] not in (None, "query"):
        raise fail("invalid_request", "Only response_mode=query is supported by the dev IdP")

    challenge, method = params["code_challenge"], params["code_challenge_method"]
    if method is not None and challenge is None:
        raise fail("invalid_request", "code_challenge_method requires a code_challenge")
    if challenge is not None:
        if method != "S256":
            # An absent method means `plain` in RFC 7636; plain offers no protection.
            raise fail(
                "invalid_request", "code_challenge_method must be S256 (plain is not allowed)"
            )
        if not _S256_CHALLENGE.match(challenge):
            raise fail("invalid_request", "code_challenge must be a base64url SHA-256 (43 chars)")

    audience = params["audience"]
    if audience is not None and audience != idp.api_audience:
        raise fail("access_denied", f"Service not found: {audience}")

    prompts = (params["prompt"] or "").split()
    if any(p not in _PROMPTS for p in prompts):
        raise fail("invalid_request", f"Unsupported prompt: {params['prompt']}")
    if "none" in prompts and len(prompts) > 1:
        raise fail("invalid_request", "prompt=none cannot be combined with other values")

    org: Organization | None = None
    if params["organization"] is not None:
        if client.organization_usage == "deny":
            raise fail("invalid_request", "the client is not configured to use organizations")
        org = await store.find_organization(db, params["organization"])
        if org is None:
            raise fail(
                "invalid_request", f"parameter organization is invalid: {params['organization']}"
            )

    invitation: Invitation | None = None
    if params["invitation"] is not None:
        if org is None:
            raise fail("invalid_request", "parameter organization is required with invitation")
        invitation = await db.scalar(
            select(Invitation).where(Invitation.ticket_id == params["invitation"])
        )
        if invitation is None or invitation.organization_id != org.id:
            raise fail("invalid_request", "invitation not found or already used")
        if invitation.expires_at <= now:
            raise fail("invalid_request", "the invitation has expired")
        if invitation.client_id != client.client_id:
            raise fail("invalid_request", "the invitation was issued for another application")

    connection_name = params["connection"]
    if invitation is not None and invitation.connection_id is not None:
        forced = await db.get(Connection, invitation.connection_id)
        if forced is not None:
            if connection_name is not None and connection_name != forced.name:
                raise fail("invalid_request", "the invitation requires another connection")
            connection_name = forced.name
    if connection_name is not None:
        connection = await store.connection_by_name(db, connection_name)
        if connection is None or client.client_id not in connection.enabled_clients:
            raise fail("invalid_request", f"the connection was not found: {connection_name}")
        if org is not None and await store.enabled_connection(db, org.id, connection_name) is None:
            raise fail(
                "invalid_request",
                f"the connection {connection_name} is not enabled for the organization {org.id}",
            )

    return {
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "nonce": params["nonce"],
        "scope": params["scope"] or "openid",
        "audience": audience,
        "code_challenge": challenge,
        "organization_id": org.id if org else None,
        "invitation_id": invitation.id if invitation else None,
        "connection": connection_name,
        "login_hint": params["login_hint"],
        "prompt": prompts,
        "require_org": client.organization_usage == "require" and org is None,
        # The tenant's post-login Action challenges for a second factor (saas.devidp.mfa).
        REQUIRED: asks_for_mfa(params["acr_values"]),
    }


async def allowed_connections(db: AsyncSession, params: dict[str, Any]) -> list[Connection]:
    """The connections the user may sign in with for this transaction."""
    if params["connection"]:
        conn = await store.connection_by_name(db, params["connection"])
        return [conn] if conn else []
    if params["organization_id"]:
        return [c for _, c in await store.enabled_connections(db, params["organization_id"])]
    rows = await db.scalars(select(Connection).order_by(Connection.name))
    return [c for c in rows if params["client_id"] in c.enabled_clients]


class Refusal(Exception):
    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


async def admit(
    idp: DevIdp, db: AsyncSession, params: dict[str, Any], user: User, connection: str, now: float
) -> Organization | None:
    """May this user enter (the organization of) this request? Raises ``Refusal`` if not.

    Accepting an invitation happens here: it adds the membership with the invited roles and
    consumes the invitation, as Auth0 does.
    """
    org_id = params["organization_id"]
    if org_id is None:
        return None
    org = await db.get(Organization, org_id)
    if org is None:
        raise Refusal("invalid_request", f"parameter organization is invalid: {org_id}")
    enabled = await store.enabled_connection(db, org.id, connection)
    if enabled is None:
        raise Refusal(
            "access_denied",
            f"the connection {connection} is not enabled for the organization {org.id}",
        )
    if params["invitation_id"]:
        invitation = await db.get(Invitation, params["invitation_id"])
        if invitation is None or invitation.expires_at <= now:
            raise Refusal("access_denied", "invitation not found or already used")
        if invitation.invitee_email.lower() != user.email.lower():
            raise Refusal(
                "access_denied",
                "the invitation was sent to another email address; sign in as the invitee",
            )
        await store.add_membership(db, org.id, user.user_id, now)
        await store.add_member_roles(db, org.id, user.user_id, list(invitation.roles))
        await db.execute(delete(Invitation).where(Invitation.id == invitation.id))
        return org
    if await store.is_member(db, org.id, user.user_id):
        return org
    if enabled.assign_membership_on_login:
        await store.add_membership(db, org.id, user.user_id, now)
        return org
    raise Refusal("access_denied", f"user {user.user_id} is not part of the {org.id} organization")


async def issue_code(
    idp: DevIdp,
    db: AsyncSession,
    params: dict[str, Any],
    user: User,
    session: IdpSession,
    now: float,
) -> Redirect:
    code = opaque_token()
    family = TokenFamily(id=random_id("", 32), revoked=False)
    db.add(family)
    db.add(
        AuthorizationCode(
            code_hash=sha256_hex(code),
            client_id=params["client_id"],
            redirect_uri=params["redirect_uri"],
            user_id=user.user_id,
            session_id=session.id,
            scope=params["scope"],
            audience=params["audience"],
            nonce=params["nonce"],
            organization_id=params["organization_id"],
            code_challenge=params["code_challenge"],
            auth_time=session.auth_time,
            expires_at=now + CODE_TTL_SECONDS,
            used_at=None,
            family_id=family.id,
        )
    )
    if params.get(REQUIRED) and not challenge_pending(params):
        db.add(MfaCode(code_hash=sha256_hex(code), expires_at=now + CODE_TTL_SECONDS))
    await db.flush()
    return Redirect(add_query(params["redirect_uri"], {"code": code, "state": params["state"]}))


async def finish(
    idp: DevIdp,
    db: AsyncSession,
    txn: LoginTransaction,
    user: User,
    session: IdpSession,
    now: float,
    cookies: list[Cookie] | None = None,
) -> Response[Any]:
    """The user is authenticated: pick an organization if needed, check entry, issue a code."""
    params = txn.params
    if params["require_org"] and not params["organization_id"]:
        txn.authenticated_user_id = user.user_id
        await db.commit()
        return Redirect(f"/u/organization?state={quote(txn.id)}", cookies=cookies or [])
    if challenge_pending(params):
        # Before the organization admits anyone: an invitation is consumed only once.
        txn.authenticated_user_id = user.user_id
        await db.commit()
        return Redirect(mfa_location(txn), cookies=cookies or [])
    try:
        await admit(idp, db, params, user, session.connection, now)
    except Refusal as refusal:
        txn.completed = True
        await db.commit()
        return Redirect(
            add_query(
                params["redirect_uri"],
                {
                    "error": refusal.error,
                    "error_description": refusal.description,
                    "state": params["state"],
                },
            ),
            cookies=cookies or [],
        )
    txn.completed = True
    redirect = await issue_code(idp, db, params, user, session, now)
    await db.commit()
    redirect.cookies.extend(cookies or [])
    return redirect


def _session_fits(
    params: dict[str, Any], session: IdpSession, user: User, invitee: str | None
) -> bool:
    """Can the existing SSO session serve this request without asking again?"""
    if "login" in params["prompt"]:
        return False
    if params["connection"] and session.connection != params["connection"]:
        return False
    return not (invitee is not None and invitee.lower() != user.email.lower())


@get("/authorize")
async def authorize(request: Request[Any, Any, Any], db: Db, state: State) -> Response[Any]:
    idp = get_idp(state)
    now = idp.clock()
    params = await validate_request(idp, db, request.query_params, now)
    invitee: str | None = None
    if params["invitation_id"]:
        invitation = await db.get(Invitation, params["invitation_id"])
        invitee = invitation.invitee_email if invitation else None
        if invitee and not params["login_hint"]:
            params["login_hint"] = invitee

    # Housekeeping: forget abandoned sign-ins.
    await db.execute(delete(LoginTransaction).where(LoginTransaction.expires_at < now))
    txn = LoginTransaction(
        id=opaque_token(24),
        params=params,
        created_at=now,
        expires_at=now + TRANSACTION_TTL_SECONDS,
        completed=False,
    )
    db.add(txn)
    await db.flush()

    existing = await current_session(request, db, now)
    if "none" in params["prompt"]:
        login_required = AuthorizeRedirect(
            params["redirect_uri"], "login_required", "Login required", params["state"]
        )
        if (
            existing is None
            or params["require_org"]
            or not _session_fits(params, *existing, invitee)
        ):
            raise login_required
        if challenge_pending(params):
            raise AuthorizeRedirect(
                params["redirect_uri"],
                "interaction_required",
                "Multifactor authentication required",
                params["state"],
            )
        session, user = existing
        try:
            await admit(idp, db, params, user, session.connection, now)
        except Refusal:
            await db.rollback()
            raise login_required from None
        txn.completed = True
        redirect = await issue_code(idp, db, params, user, session, now)
        await db.commit()
        return redirect

    if existing is not None and _session_fits(params, *existing, invitee):
        session, user = existing
        return await finish(idp, db, txn, user, session, now)

    await db.commit()
    return Redirect(f"/u/login?state={quote(txn.id)}")
