"""The callback pipeline: state -> code exchange -> ID token -> organization -> user -> membership.

Each step either hands on a verified value or raises a named LoginRefused. An ID token without
an email is completed from the UserInfo endpoint (same `sub`, or refused). Database writes
(user upsert, invitation acceptance, JIT membership, audit) happen only after every token check
passed, in one transaction that the caller commits.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from saas.audit.actions import AuditAction
from saas.audit.services import Actor, AuditService
from saas.config import Settings
from saas.db.models import Membership, Organization, User
from saas.errors import InvalidInput
from saas.login import errors
from saas.login.ended_auth0_sessions import ended_by_its_person
from saas.login.membership import (
    enforce_required_sso,
    resolve_membership,
    signed_in_connection,
)
from saas.login.mfa import token_shows_mfa
from saas.login.pending import PendingLogin
from saas.login.provider import OIDCProvider, UserinfoUnavailable
from saas.login.tokens import InvalidToken, verify_id_token
from saas.organizations.services import OrganizationRepository
from saas.users.services import UserService, may_become_operator

logger = structlog.get_logger("saas.login.callback")


@dataclass(frozen=True, slots=True)
class CompletedLogin:
    user: User
    organization: Organization | None
    membership: Membership | None
    next_url: str
    id_token: str
    # The ID token's `amr` showed multi-factor authentication (saas.login.mfa).
    mfa: bool = False
    # The ID token's `sid`: the Auth0 session, kept with the app's (saas.login.sessions).
    auth0_sid: str | None = None


@dataclass(frozen=True, slots=True)
class CallbackParams:
    state: str | None
    code: str | None
    error: str | None
    error_description: str | None


@dataclass(frozen=True, slots=True)
class VerifiedLogin:
    claims: dict[str, Any]
    # Kept server-side as the sign-out's id_token_hint (saas.login.sessions).
    id_token: str


NO_EMAIL = "The identity provider did not send an email address."
# Auth0's session ids are at most 50 characters ("Maximum string length: 50", Management API,
# Revoke session, https://auth0.com/docs/api/management/v2/sessions/revoke-session).
MAX_SID_LENGTH = 50
# The ids Auth0 puts in `sid` are URL-safe base64 characters. Nothing else is taken: the id
# becomes a path segment of the Management API, where "." or ".." would name another path.
_SID = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_SID_LENGTH}}}")


def auth0_sid_of(claims: dict[str, Any]) -> str | None:
    """The ID token's `sid` ("the session ID corresponds to the sid claim already in ID Tokens",
    https://auth0.com/docs/manage-users/sessions/manage-user-sessions-with-auth0-management-api),
    or None when it is missing or not one Auth0 could have issued."""
    sid = claims.get("sid")
    if isinstance(sid, str) and _SID.fullmatch(sid):
        return sid
    return None


async def verified_claims(
    provider: OIDCProvider, pending: PendingLogin, params: CallbackParams
) -> VerifiedLogin:
    """Every network call of the callback happens here, before the first database query, so
    none of them runs inside the transaction that follows."""
    if params.error:
        raise errors.ProviderError(_provider_message(params))
    if not params.code:
        raise errors.ProviderError("The identity provider sent no authorization code.")
    tokens = await provider.exchange_code(code=params.code, code_verifier=pending.code_verifier)
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str):
        raise errors.TokenRejected("The identity provider sent no ID token.")
    try:
        claims = await verify_id_token(
            id_token,
            await provider.jwks(),
            issuer=provider.issuer,
            client_id=provider.settings.auth0_client_id,
            nonce=pending.nonce,
        )
    except InvalidToken as error:
        raise errors.TokenRejected from error
    if not _email_of(claims):
        claims = await _with_userinfo_email(provider, tokens, claims)
    return VerifiedLogin(claims=claims, id_token=id_token)


def _email_of(claims: dict[str, Any]) -> str | None:
    email = claims.get("email")
    return email if isinstance(email, str) and email else None


async def _with_userinfo_email(
    provider: OIDCProvider, tokens: dict[str, Any], claims: dict[str, Any]
) -> dict[str, Any]:
    """The email from the UserInfo endpoint, for an ID token that carries none.

    OpenID Connect Core 1.0 §5.4: the claims the `email` scope asks for are returned by the
    UserInfo endpoint; an ID token need not repeat them. §5.3.2: the UserInfo `sub` MUST
    exactly match the ID token's, or the response MUST NOT be used (it could describe somebody
    else). The email and its `email_verified` come from the same answer, never half from each."""
    access_token = tokens.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise errors.TokenRejected(NO_EMAIL)
    try:
        info = await provider.userinfo(access_token)
    except UserinfoUnavailable as error:
        logger.info("userinfo_unavailable", reason=str(error))
        raise errors.TokenRejected(NO_EMAIL) from error
    sub = info.get("sub")
    if not isinstance(sub, str) or not hmac.compare_digest(sub.encode(), claims["sub"].encode()):
        logger.warning("userinfo_sub_mismatch")
        raise errors.TokenRejected
    email = _email_of(info)
    if email is None:
        raise errors.TokenRejected(NO_EMAIL)
    return {**claims, "email": email, "email_verified": info.get("email_verified") is True}


# The IdP's own descriptions name internal user and organization ids: they go to the log,
# and people get these instead.
PROVIDER_MESSAGES = {
    "access_denied": "Your account does not have access to this organization. If you think it "
    "should, ask its administrator for an invitation.",
    "login_required": "Please sign in again.",
    "consent_required": "Access was not granted. Please sign in again and allow access.",
    "interaction_required": "Please sign in again.",
    "temporarily_unavailable": "The sign-in service is busy. Please try again in a minute.",
}


def _provider_message(params: CallbackParams) -> str:
    logger.info(
        "provider_error",
        error=params.error,
        description=(params.error_description or "")[:300],
    )
    return PROVIDER_MESSAGES.get(
        params.error or "", "The identity provider could not sign you in. Please start again."
    )


async def organization_from_claims(
    db: AsyncSession, pending: PendingLogin, claims: dict[str, Any]
) -> Organization | None:
    token_org = claims.get("org_id")
    if pending.auth0_org_id is not None:
        if token_org != pending.auth0_org_id:
            raise errors.OrganizationMismatch
    elif token_org is None:
        return None
    if not isinstance(token_org, str):
        raise errors.UnknownOrganization
    organization = await OrganizationRepository(session=db).get_one_or_none(auth0_org_id=token_org)
    if organization is None:
        raise errors.UnknownOrganization
    if not organization.is_active:
        raise errors.OrganizationSuspended
    return organization


async def complete_login(
    db: AsyncSession,
    *,
    settings: Settings,
    provider: OIDCProvider,
    pending: PendingLogin,
    params: CallbackParams,
    actor: Actor,
    signed_in_sub: str | None = None,
) -> CompletedLogin:
    verified = await verified_claims(provider, pending, params)
    claims = verified.claims
    if (
        pending.silent
        and signed_in_sub is not None
        and not hmac.compare_digest(signed_in_sub.encode(), claims["sub"].encode())
    ):
        # Before the first write: a silent answer never replaces who is signed in here.
        raise errors.SilentSwitchToAnotherPerson
    auth0_sid = auth0_sid_of(claims)
    if settings.auth0_revoke_sessions and await ended_by_its_person(db, claims, auth0_sid):
        # Before the first write: the browser signs in afresh, and nothing of this one stays.
        # Checked on the fresh sign-in too: `prompt=login` is only a parameter of a redirect
        # the browser follows itself, and one that drops it gets the ended session's answer
        # again. A sign-in that really was fresh has a later `auth_time` and passes.
        raise errors.Auth0SessionEnded
    organization = await organization_from_claims(db, pending, claims)
    mfa = token_shows_mfa(claims)
    if organization is not None and organization.require_mfa and not mfa:
        # Before the first write: a refused sign-in leaves no user, membership or audit row.
        raise errors.MfaRequired
    email = _email_of(claims)
    if email is None:
        raise errors.TokenRejected(NO_EMAIL)
    try:
        user = await UserService(session=db).upsert_by_sub(
            sub=claims["sub"],
            email=email,
            name=str(claims.get("name") or ""),
            picture=claims.get("picture") if isinstance(claims.get("picture"), str) else None,
            grant_platform_operator=may_become_operator(
                settings,
                sub=claims["sub"],
                email=email,
                email_verified=claims.get("email_verified") is True,
            ),
            signed_in=True,
        )
    except InvalidInput as error:
        raise errors.TokenRejected(
            "The email address from the identity provider is not valid."
        ) from error
    await enforce_required_sso(
        db,
        user,
        connection_name=signed_in_connection(claims, settings.auth0_connection_claim),
        claim=settings.auth0_connection_claim,
    )
    membership = None
    if organization is not None:
        membership = await resolve_membership(
            db,
            user=user,
            organization=organization,
            invitation_ticket=pending.invitation,
            email_verified=claims.get("email_verified") is True,
            actor=Actor(user.id, actor.ip_address, actor.user_agent),
        )
    await AuditService(session=db).record(
        AuditAction.AUTH_LOGIN,
        actor=Actor(user.id, actor.ip_address, actor.user_agent),
        organization_id=organization.id if organization else None,
        target_type="user",
        target_id=user.id,
        details={"connection": claims["sub"].split("|")[0]},
    )
    return CompletedLogin(
        user=user,
        organization=organization,
        membership=membership,
        next_url=pending.next_url,
        id_token=verified.id_token,
        mfa=mfa,
        auth0_sid=auth0_sid,
    )
