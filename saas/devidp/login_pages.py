"""The sign-in pages a person sees: connection chooser, password database (with sign-up),
simulated enterprise IdPs, and the organization picker.

Every POST form carries Litestar's CSRF token (cookie ``devidp_csrf``) and the transaction
id; the picker additionally checks that the browser's IdP session is the user who signed in.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from saas.demo.data import DEMO_PASSWORD
from saas.devidp import store
from saas.devidp.authorize import allowed_connections, finish
from saas.devidp.context import Db, DevIdp, get_idp
from saas.devidp.errors import HtmlError
from saas.devidp.ids import constant_time_equals
from saas.devidp.models import Client, Connection, Invitation, LoginTransaction, Organization, User
from saas.devidp.passwords import MIN_PASSWORD_LENGTH, hash_password, verify_password
from saas.devidp.seed import picture_for
from saas.devidp.session import current_session, start_session

STRATEGY_LABELS = {
    "samlp": "SAML single sign-on",
    "oidc": "OpenID Connect single sign-on",
    "waad": "Microsoft Entra ID single sign-on",
    "okta": "Okta single sign-on",
    "google-apps": "Google Workspace single sign-on",
    "auth0": "Email and password",
}


async def _transaction(db: AsyncSession, txn_id: str | None, now: float) -> LoginTransaction:
    txn = await db.get(LoginTransaction, txn_id) if txn_id else None
    if txn is None or txn.expires_at <= now:
        raise HtmlError(
            400,
            "This sign-in has expired",
            "Go back to the application and start signing in again.",
        )
    if txn.completed:
        raise HtmlError(
            400,
            "This sign-in is already complete",
            "You have already signed in with this page. Go back to the application.",
        )
    return txn


async def _page_context(db: AsyncSession, txn: LoginTransaction) -> dict[str, Any]:
    params = txn.params
    client = await db.get(Client, params["client_id"])
    org = (
        await db.get(Organization, params["organization_id"]) if params["organization_id"] else None
    )
    invitation = (
        await db.get(Invitation, params["invitation_id"]) if params["invitation_id"] else None
    )
    return {
        "state": txn.id,
        "client_name": client.name if client else params["client_id"],
        "organization": org,
        "invitation": invitation,
        "login_hint": params.get("login_hint") or "",
        "strategy_labels": STRATEGY_LABELS,
    }


def _domains(connection: Connection) -> list[str]:
    return [d.lower() for d in connection.options.get("domain_aliases", []) if isinstance(d, str)]


async def _connection_for(db: AsyncSession, txn: LoginTransaction, name: str) -> Connection:
    for connection in await allowed_connections(db, txn.params):
        if connection.name == name:
            return connection
    raise HtmlError(
        400,
        "Sign-in method not available",
        f"The connection {name!r} is not available for this sign-in.",
    )


@get("/u/login")
async def choose_connection(db: Db, state: State, request: Request[Any, Any, Any]) -> Response[Any]:
    idp = get_idp(state)
    txn = await _transaction(db, request.query_params.get("state"), idp.clock())
    if txn.params["connection"]:
        return Redirect(f"/u/login/{quote(txn.params['connection'])}?state={quote(txn.id)}")
    connections = await allowed_connections(db, txn.params)
    context = await _page_context(db, txn)
    context["connections"] = connections
    return Template(template_name="choose_connection.html", context=context)


@get("/u/login/{connection_name:str}")
async def connection_page(
    connection_name: FromPath[str], db: Db, state: State, request: Request[Any, Any, Any]
) -> Template:
    idp = get_idp(state)
    txn = await _transaction(db, request.query_params.get("state"), idp.clock())
    connection = await _connection_for(db, txn, connection_name)
    return await _render_connection(db, txn, connection, error=None, email=None)


async def _render_connection(
    db: AsyncSession,
    txn: LoginTransaction,
    connection: Connection,
    *,
    error: str | None,
    email: str | None,
    status: int = 200,
) -> Template:
    context = await _page_context(db, txn)
    context.update(
        connection=connection,
        domains=_domains(connection),
        error=error,
        email=email if email is not None else context["login_hint"],
        strategy_label=STRATEGY_LABELS.get(connection.strategy, connection.strategy),
        can_choose_other=not txn.params["connection"],
    )
    name = "login_password.html" if connection.strategy == "auth0" else "login_enterprise.html"
    return Template(template_name=name, context=context, status_code=status)


@post("/u/login/{connection_name:str}", status_code=200)
async def submit_credentials(
    connection_name: FromPath[str], db: Db, state: State, request: Request[Any, Any, Any]
) -> Response[Any]:
    idp = get_idp(state)
    now = idp.clock()
    form = await request.form()
    txn = await _transaction(db, form.get("state"), now)
    connection = await _connection_for(db, txn, connection_name)
    email = str(form.get("email") or "").strip().lower()
    password = str(form.get("password") or "")
    if not email or "@" not in email or not password:
        return await _render_connection(
            db, txn, connection, error="Enter your email and password.", email=email, status=400
        )
    if connection.strategy == "auth0":
        user = await store.user_by_email(db, connection.name, email)
        if user is None or not verify_password(user.password_hash, password):
            return await _render_connection(
                db, txn, connection, error="Wrong email or password.", email=email, status=400
            )
    else:
        user_or_error = await _enterprise_user(db, connection, email, password, now)
        if isinstance(user_or_error, str):
            return await _render_connection(
                db, txn, connection, error=user_or_error, email=email, status=400
            )
        user = user_or_error
    return await _signed_in(idp, request, db, txn, user, connection, now)


# Strategies whose Auth0 user ids have no connection name: `<strategy>|<id at the IdP>`.
# Google Workspace: the email, or Google's user id with the connection option
# `map_user_id_to_id` (Auth0's Management API types, ConnectionOptionsGoogleApps). Microsoft
# Entra ID: the object id or `sub` (`user_id_attribute`, ConnectionOptionsAzureAd), as in
# https://auth0.com/docs/customize/integrations/migrate-office365-connections-to-windows-azure-ad
# (`office365|…` becomes `waad|…`). Auth0 documents user ids only as
# `{identity provider id}|{unique id in the provider}` (https://auth0.com/docs/users/identify-users),
# so a relying party must not read a connection out of them; these two are where it breaks.
TWO_PART_ID_STRATEGIES = frozenset({"google-apps", "waad"})


def enterprise_user_id(connection: Connection, email: str) -> str:
    """The Auth0-shaped user id a simulated enterprise IdP gives `email`."""
    opaque = hashlib.sha256(f"{connection.name}|{email}".encode()).hexdigest()[:24]
    if connection.strategy == "google-apps":
        return f"google-apps|{email}"
    if connection.strategy in TWO_PART_ID_STRATEGIES:
        return f"{connection.strategy}|{opaque}"
    if connection.strategy == "samlp":
        return f"samlp|{connection.name}|{email}"  # SAML NameID is the email here
    return f"{connection.strategy}|{connection.name}|{opaque}"


async def _enterprise_user(
    db: AsyncSession, connection: Connection, email: str, password: str, now: float
) -> User | str:
    """Simulate the customer's IdP: right domain, the demo password, an Auth0-shaped id."""
    domains = _domains(connection)
    domain = email.rsplit("@", 1)[1]
    if domains and domain not in domains:
        allowed = ", ".join("@" + d for d in domains)
        return f"This identity provider only knows {allowed} accounts."
    if not constant_time_equals(password, DEMO_PASSWORD):
        return (
            "Wrong email or password. (Every simulated enterprise account uses the demo password.)"
        )
    user = await store.user_by_email(db, connection.name, email)
    if user is None:
        user_id = enterprise_user_id(connection, email)
        if await db.get(User, user_id) is not None:
            # A two-part id names no connection: the same Google account through a second
            # Google Workspace connection is the same Auth0 user id, which Auth0 keeps unique.
            return "This account already signs in through another connection."
        local = email.split("@", 1)[0]
        user = await _new_user(
            db,
            connection,
            user_id=user_id,
            email=email,
            email_verified=True,  # enterprise IdPs assert verified emails
            name=" ".join(part.capitalize() for part in local.replace("_", ".").split(".") if part),
            password_hash=None,
            now=now,
        )
    return user


async def _new_user(
    db: AsyncSession,
    connection: Connection,
    *,
    user_id: str,
    email: str,
    email_verified: bool,
    name: str,
    password_hash: str | None,
    now: float,
) -> User:
    """A user as Auth0 creates one at its first sign-in (or sign-up): no logins counted yet."""
    user = User(
        user_id=user_id,
        email=email,
        email_verified=email_verified,
        name=name,
        picture=picture_for(email),
        connection=connection.name,
        password_hash=password_hash,
        groups=[],
        created_at=now,
        updated_at=now,
        logins_count=0,
    )
    db.add(user)
    await db.flush()
    return user


async def _signed_in(
    idp: DevIdp,
    request: Request[Any, Any, Any],
    db: AsyncSession,
    txn: LoginTransaction,
    user: User,
    connection: Connection,
    now: float,
) -> Response[Any]:
    session, cookie = await start_session(idp, request, db, user, connection.name, now)
    return await finish(idp, db, txn, user, session, now, cookies=[cookie])


@get("/u/signup")
async def signup_page(db: Db, state: State, request: Request[Any, Any, Any]) -> Template:
    idp = get_idp(state)
    txn = await _transaction(db, request.query_params.get("state"), idp.clock())
    connection = await _password_connection(db, txn)
    context = await _page_context(db, txn)
    context.update(connection=connection, error=None, email=context["login_hint"], name="")
    return Template(template_name="signup.html", context=context)


async def _password_connection(db: AsyncSession, txn: LoginTransaction) -> Connection:
    for connection in await allowed_connections(db, txn.params):
        if connection.strategy == "auth0" and not connection.options.get("disable_signup"):
            return connection
    raise HtmlError(
        400, "Sign-up not available", "This sign-in does not allow creating an account."
    )


@post("/u/signup", status_code=200)
async def signup(db: Db, state: State, request: Request[Any, Any, Any]) -> Response[Any]:
    idp = get_idp(state)
    now = idp.clock()
    form = await request.form()
    txn = await _transaction(db, form.get("state"), now)
    connection = await _password_connection(db, txn)
    email = str(form.get("email") or "").strip().lower()
    name = str(form.get("name") or "").strip()
    password = str(form.get("password") or "")
    error = None
    if not email or "@" not in email or email.startswith("@") or email.endswith("@"):
        error = "Enter a valid email address."
    elif len(password) < MIN_PASSWORD_LENGTH:
        error = f"Choose a password of at least {MIN_PASSWORD_LENGTH} characters."
    elif await store.user_by_email(db, connection.name, email) is not None:
        error = "The user already exists. Sign in instead."
    if error:
        context = await _page_context(db, txn)
        context.update(connection=connection, error=error, email=email, name=name)
        return Template(template_name="signup.html", context=context, status_code=400)
    user = await _new_user(
        db,
        connection,
        user_id="auth0|" + hashlib.sha256(f"{connection.id}|{email}".encode()).hexdigest()[:24],
        email=email,
        # Invitees prove control of the address by following the emailed link.
        email_verified=bool(txn.params["invitation_id"]),
        name=name or email.split("@", 1)[0],
        password_hash=hash_password(password),
        now=now,
    )
    return await _signed_in(idp, request, db, txn, user, connection, now)


async def _picker_user(
    idp: DevIdp,
    request: Request[Any, Any, Any],
    db: AsyncSession,
    txn: LoginTransaction,
    now: float,
) -> tuple[Any, User]:
    existing = await current_session(request, db, now)
    if (
        existing is None
        or txn.authenticated_user_id is None
        or existing[1].user_id != txn.authenticated_user_id
    ):
        raise HtmlError(400, "Not signed in", "Sign in again to choose an organization.")
    return existing


@get("/u/organization")
async def organization_picker(db: Db, state: State, request: Request[Any, Any, Any]) -> Template:
    idp = get_idp(state)
    now = idp.clock()
    txn = await _transaction(db, request.query_params.get("state"), now)
    _, user = await _picker_user(idp, request, db, txn, now)
    context = await _page_context(db, txn)
    context.update(user=user, organizations=await store.user_organizations(db, user.user_id))
    return Template(template_name="organization_picker.html", context=context)


@post("/u/organization", status_code=200)
async def choose_organization(
    db: Db, state: State, request: Request[Any, Any, Any]
) -> Response[Any]:
    idp = get_idp(state)
    now = idp.clock()
    form = await request.form()
    txn = await _transaction(db, form.get("state"), now)
    session, user = await _picker_user(idp, request, db, txn, now)
    chosen = str(form.get("organization") or "")
    memberships = {org.id: org for org in await store.user_organizations(db, user.user_id)}
    if chosen not in memberships:
        raise HtmlError(400, "Unknown organization", "Choose one of the organizations listed.")
    # Copy: SQLAlchemy only notices a reassigned JSON value, not an in-place change.
    txn.params = {**txn.params, "organization_id": chosen, "require_org": False}
    return await finish(idp, db, txn, user, session, now)
