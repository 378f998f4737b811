"""A test sign-in through an organization's SSO connection, started by its admin from the SSO
settings page: the callback verifies the answer exactly as for a real sign-in (state, code, ID
token, nonce, organization), then keeps what it received for the result page instead of signing
anyone in. Nothing is written to the database and the admin's own session identity stays as it
was, whoever signed in at the identity provider."""

from __future__ import annotations

import time
from typing import Any

from saas.config import Settings
from saas.login import errors
from saas.login.callback import CallbackParams, verified_claims
from saas.login.membership import signed_in_connection
from saas.login.pending import PendingLogin
from saas.login.provider import OIDCProvider

# Where the session keeps the latest test's result, for the result page.
SSO_TEST_RESULT = "sso_test_result"


async def run_test_sign_in(
    session: dict[str, Any],
    provider: OIDCProvider,
    settings: Settings,
    pending: PendingLogin,
    params: CallbackParams,
) -> None:
    """Record the result of the test `pending` started: the claims received, or the reason the
    sign-in was refused."""
    result: dict[str, Any] = {
        "organization_id": pending.organization_id,
        "connection": pending.sso_test,
        "at": int(time.time()),
    }
    try:
        claims = (await verified_claims(provider, pending, params)).claims
        if claims.get("org_id") != pending.auth0_org_id:
            raise errors.OrganizationMismatch
    except errors.LoginRefused as refused:
        result.update(ok=False, title=refused.title, reason=refused.detail, code=refused.reason)
    else:
        result.update(
            ok=True,
            claims={
                "sub": str(claims.get("sub", "")),
                "email": str(claims.get("email") or ""),
                "email_verified": claims.get("email_verified") is True,
                "name": str(claims.get("name") or ""),
                "connection": signed_in_connection(claims, settings.auth0_connection_claim),
                "org_id": str(claims.get("org_id") or ""),
            },
        )
    session[SSO_TEST_RESULT] = result
