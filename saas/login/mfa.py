"""Multi-factor sign-in for organizations that require it (their security policy).

- Asking: the authorization request carries `acr_values` with the multi-factor policy Auth0
  documents (https://auth0.com/docs/multifactor-authentication/developer/step-up-with-acr:
  "Auth0 utilizes the 'Multi-Factor Authentication' policy,
  http://schemas.openid.net/pape/policies/2007/06/multi-factor"). At Auth0 a post-login Action
  must act on it (README, "Auth0 tenant configuration").
- Checking, whatever Auth0 was configured to do: the ID token's `amr` must be a list holding
  "mfa" (https://auth0.com/docs/secure/multi-factor-authentication/step-up-authentication/
  configure-step-up-authentication-for-web-apps: "It must be present in the ID token's payload
  and must contain the value mfa ... you must both test for its existence and examine its
  contents"). Otherwise the callback refuses the sign-in before anything is written.
- The JSON API: Auth0's access tokens carry no `amr`; the tenant's post-login Action copies the
  names of `event.authentication.methods` into a namespaced claim (`Settings.auth0_amr_claim`,
  README "Auth0 tenant: sign-in and sign-out"), and an organization that requires MFA takes only
  access tokens whose claim is a list holding "mfa" (`access_token_shows_mfa`). Custom claims
  must be namespaced URLs to reach an access token for an API audience
  (https://auth0.com/docs/secure/tokens/json-web-tokens/create-custom-claims); the claim is
  signed with the rest of the token, so a client cannot add it.
- Per organization: the session remembers the one organization whose sign-in showed MFA
  (`MFA_ORGANIZATION_ID`); entering another that requires it takes its own authorization.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection

from saas.db.models import Organization
from saas.login.sessions import MFA_ORGANIZATION_ID

MFA_POLICY = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"


def token_shows_mfa(claims: dict[str, Any]) -> bool:
    amr = claims.get("amr")
    return isinstance(amr, list) and "mfa" in amr


def access_token_shows_mfa(claims: dict[str, Any], claim: str) -> bool:
    methods = claims.get(claim)
    return isinstance(methods, list) and "mfa" in methods


def mfa_done_for(
    connection: ASGIConnection[Any, Any, Any, Any], organization: Organization
) -> bool:
    return connection.session.get(MFA_ORGANIZATION_ID) == str(organization.id)
