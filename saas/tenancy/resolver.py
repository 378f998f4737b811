"""The one tenant-context resolver: organization from the path, member from the session or the
bearer token, once per request.

- Browser routes `/o/<slug>/...`: the member comes from the server-side session. A non-member
  gets 404 (no disclosure that the organization exists); a suspended organization is refused;
  an organization other than the session's active one needs a fresh authorization for it
  (switching is never a browser claim).
- API routes `/api/v1/orgs/<org>/...`: the member comes from a verified Auth0 access token whose
  `org_id` must be the path's organization; the token's `permissions` and the live membership
  must both allow the action. An organization that requires MFA takes only tokens whose
  namespaced methods claim shows it (saas.login.mfa), else 403 `mfa_required`.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from litestar.connection import ASGIConnection
from sqlalchemy import ColumnElement, Select, and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from saas.config import Settings
from saas.db.models import Membership, Organization, User
from saas.errors import Forbidden, MfaRequired, NotFound
from saas.login.current_user import active_organization_id, session_user_id
from saas.login.mfa import MFA_POLICY, access_token_shows_mfa, mfa_done_for
from saas.login.provider import OIDCProvider
from saas.login.redirects import sign_in_location
from saas.login.sessions import MFA_ORGANIZATION_ID, ORGANIZATION_ID, session_past
from saas.login.tokens import InvalidToken, verify_access_token
from saas.security.services import effective_timeouts
from saas.tenancy.context import NOT_VISIBLE, SignInRequired, TenantContext

# The statements every tenant request runs, built once: building and keying a statement costs
# more than running it. Each reads the user, the organization and the membership in one go.
_USERS_MEMBERSHIP = and_(
    Membership.organization_id == Organization.id, Membership.user_id == User.id
)
_VIEWER_IN_ORGANIZATION = (
    select(User, Organization, Membership)
    .select_from(User)
    .outerjoin(Organization, Organization.slug == bindparam("slug"))
    .outerjoin(Membership, _USERS_MEMBERSHIP)
    .where(User.id == bindparam("user_id"))
)


def _subject_in_organization(org_match: ColumnElement[bool]) -> Select[Any]:
    return (
        select(Organization, User, Membership)
        .select_from(Organization)
        .outerjoin(User, User.sub == bindparam("sub"))
        .outerjoin(Membership, _USERS_MEMBERSHIP)
        .where(org_match)
    )


# An API path names the organization by its Auth0 id (`org_...`) or by its slug.
_SUBJECT_IN_ORGANIZATION_BY_ID = _subject_in_organization(
    Organization.auth0_org_id == bindparam("org")
)
_SUBJECT_IN_ORGANIZATION_BY_SLUG = _subject_in_organization(Organization.slug == bindparam("org"))


def _login_location(
    slug: str, connection: ASGIConnection[Any, Any, Any, Any], *, silent: bool
) -> str:
    suffix = "&silent=true" if silent else ""
    login_path = f"/o/{quote(slug)}/login"
    return sign_in_location(login_path, connection.url.path, connection.url.query) + suffix


async def resolve_tenant(
    slug: str, connection: ASGIConnection[Any, Any, Any, Any], db: AsyncSession
) -> TenantContext:
    user_id = session_user_id(connection)
    row = (
        await db.execute(_VIEWER_IN_ORGANIZATION, {"slug": slug, "user_id": user_id})
        if user_id is not None
        else None
    )
    found = row.first() if row is not None else None
    if found is None:
        if user_id is not None:
            connection.clear_session()  # the account is gone; so is the session
        raise SignInRequired(_login_location(slug, connection, silent=False))
    user, organization, membership = found
    in_this_org = organization is not None and active_organization_id(connection) == organization.id
    if organization is None or membership is None or not organization.is_active:
        if in_this_org:
            # Access ended while this session was in the organization: it is in none now.
            # (saas.login.session_ending ends the sessions of a removed member or a suspended
            # organization when the change commits; this holds for any it could not reach, and
            # for one who left on their own, who stays signed in to choose another.)
            connection.session[ORGANIZATION_ID] = None
            connection.session.pop(MFA_ORGANIZATION_ID, None)
        if organization is None or membership is None:
            raise NotFound(NOT_VISIBLE)
        raise Forbidden("This organization is suspended. Contact your administrator.")
    if active_organization_id(connection) != organization.id:
        raise SignInRequired(_login_location(slug, connection, silent=True))
    settings: Settings = connection.app.state["settings"]
    idle, absolute = effective_timeouts(organization, settings)
    if session_past(connection, idle, absolute, time.time()):
        # The organization's own, shorter session lifetime: signed out, as the platform's
        # timeout does (saas.login.sessions), at the first request past it.
        connection.clear_session()
        raise SignInRequired(_login_location(slug, connection, silent=False))
    if organization.require_mfa and not mfa_done_for(connection, organization):
        # Opened without multi-factor authentication (or before the organization required
        # it): a fresh authorization that asks for it (saas.login.authorize).
        raise SignInRequired(_login_location(slug, connection, silent=False))
    return TenantContext(organization=organization, membership=membership, user=user)


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise SignInRequired("", "A bearer access token is required.")
    return token.strip()


async def resolve_api_tenant(
    org_ref: str,
    connection: ASGIConnection[Any, Any, Any, Any],
    db: AsyncSession,
    provider: OIDCProvider,
    settings: Settings,
) -> TenantContext:
    token = bearer_token(connection)
    try:
        claims = await verify_access_token(
            token,
            await provider.jwks(),
            issuer=settings.auth0_issuer,
            audience=settings.auth0_audience,
        )
    except InvalidToken as error:
        raise SignInRequired("", f"The access token is not valid ({error}).") from error
    statement = (
        _SUBJECT_IN_ORGANIZATION_BY_ID
        if org_ref.startswith("org_")
        else _SUBJECT_IN_ORGANIZATION_BY_SLUG
    )
    found = (await db.execute(statement, {"org": org_ref, "sub": claims["sub"]})).first()
    # A token issued for another organization is told exactly what a name that does not exist
    # is told: answering otherwise would let any token holder list the organizations.
    if found is None:
        raise NotFound(NOT_VISIBLE)
    organization, user, membership = found
    if not organization.auth0_org_id or claims.get("org_id") != organization.auth0_org_id:
        raise NotFound(NOT_VISIBLE)
    if not organization.is_active:
        raise Forbidden("This organization is suspended.")
    if user is None or membership is None:
        raise Forbidden("The token's subject is not a member of this organization.")
    if organization.require_mfa and not access_token_shows_mfa(claims, settings.auth0_amr_claim):
        # Checked after the organization and the membership, so that a token of another
        # organization still learns nothing; before any handler runs, so nothing is written.
        raise MfaRequired(
            "This organization requires multi-factor authentication. Obtain a new access token "
            f"from an interactive sign-in with acr_values={MFA_POLICY} and complete the second "
            "factor; a token issued without it (silently, or by a refresh token) is not enough."
        )
    permissions = claims.get("permissions")
    return TenantContext(
        organization=organization,
        membership=membership,
        user=user,
        token_permissions=frozenset(p for p in permissions if isinstance(p, str))
        if isinstance(permissions, list)
        else frozenset(),
    )
