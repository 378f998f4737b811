"""The callback pipeline: state -> code exchange -> ID token -> organization -> user -> membership.

Each step either hands on a verified value or raises a named LoginRefused. Database writes
(user upsert, invitation acceptance, JIT membership, audit) happen only after every token check
passed, in one transaction that the caller commits.
"""

from __future__ import annotations

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
from saas.login.membership import (
    enforce_required_sso,
    resolve_membership,
    signed_in_connection,
)
from saas.login.pending import PendingLogin
from saas.login.provider import OIDCProvider
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


@dataclass(frozen=True, slots=True)
class CallbackParams:
    state: str | None
    code: str | None
    error: str | None
    error_description: str | None


async def verified_claims(
    provider: OIDCProvider, pending: PendingLogin, params: CallbackParams
) -> dict[str, Any]:
    if params.error:
        raise errors.ProviderError(_provider_message(params))
    if not params.code:
        raise errors.ProviderError("The identity provider sent no authorization code.")
    tokens = await provider.exchange_code(code=params.code, code_verifier=pending.code_verifier)
    id_token = tokens.get("id_token")
    if not isinstance(id_token, str):
        raise errors.TokenRejected("The identity provider sent no ID token.")
    try:
        return await verify_id_token(
            id_token,
            await provider.jwks(),
            issuer=provider.issuer,
            client_id=provider.settings.auth0_client_id,
            nonce=pending.nonce,
        )
    except InvalidToken as error:
        raise errors.TokenRejected from error


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
) -> CompletedLogin:
    claims = await verified_claims(provider, pending, params)
    organization = await organization_from_claims(db, pending, claims)
    email = claims.get("email")
    if not isinstance(email, str) or not email:
        raise errors.TokenRejected("The identity provider did not send an email address.")
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
        user=user, organization=organization, membership=membership, next_url=pending.next_url
    )
