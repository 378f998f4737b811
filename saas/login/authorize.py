"""Step 1 of the pipeline: the authorization request, with its state remembered server-side."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.response import Redirect

from saas.db.models import EnterpriseConnection, Organization
from saas.login.errors import OrganizationSuspended, UnknownOrganization
from saas.login.mfa import MFA_POLICY
from saas.login.pending import PendingLogin, remember
from saas.login.provider import OIDCProvider
from saas.login.redirects import safe_next


async def begin_login(
    request: Request[Any, Any, Any],
    provider: OIDCProvider,
    *,
    organization: Organization | None = None,
    connection: EnterpriseConnection | None = None,
    login_hint: str | None = None,
    invitation: str | None = None,
    next_url: str | None = None,
    silent: bool = False,
    sso_test: bool = False,
    reauthenticate: bool = False,
) -> Redirect:
    """`sso_test`: an admin's test of `connection` (saas/login/sso_test.py); it and
    `reauthenticate` ask the identity provider to authenticate afresh (`prompt=login`), not to
    reuse its session."""
    if organization is not None:
        if not organization.is_active:
            raise OrganizationSuspended
        if not organization.auth0_org_id:
            raise UnknownOrganization("This organization is still being set up. Try again shortly.")
    if organization is not None and organization.require_mfa:
        # Auth0 leaves `amr` out of silently issued ID tokens, so a silent switch into this
        # organization could never pass the callback's check: ask interactively.
        silent = False
    pending = PendingLogin.new(
        next_url=safe_next(next_url),
        organization_id=str(organization.id) if organization else None,
        auth0_org_id=organization.auth0_org_id if organization else None,
        invitation=invitation,
        silent=silent,
        sso_test=connection.auth0_connection_name if sso_test and connection else None,
        reauthenticate=reauthenticate and not silent,
    )
    extra: dict[str, str] = {}
    if organization is not None and organization.auth0_org_id:
        extra["organization"] = organization.auth0_org_id
    if connection is not None:
        extra["connection"] = connection.auth0_connection_name
    if login_hint:
        extra["login_hint"] = login_hint
    if invitation:
        extra["invitation"] = invitation
    if organization is not None and organization.require_mfa:
        extra["acr_values"] = MFA_POLICY  # saas.login.mfa
    if silent:
        extra["prompt"] = "none"
    elif sso_test or reauthenticate:
        extra["prompt"] = "login"
    url = await provider.authorization_url(
        state=pending.state,
        nonce=pending.nonce,
        code_verifier=pending.code_verifier,
        extra=extra,
    )
    remember(request.session, pending)
    return Redirect(path=url, status_code=303)
