"""The simulated Auth0 tenant's own configuration: what an Auth0 admin sets outside clients and
connections, and what the app depends on.

* The post-login Action of the README ("Auth0 tenant: sign-in and sign-out") is deployed: every
  ID token carries the connection the person signed in through, under the claim name the app is
  configured with (`Settings.auth0_connection_claim`). Switch it off to see what a tenant without
  the Action does to require-SSO organizations.
* The README's methods Action is deployed too: an access token of a sign-in that passed the
  second factor lists its authentication methods (`["pwd", "mfa"]`, `["federated", "mfa"]`)
  under `Settings.auth0_amr_claim`; any other access token has no such claim. Switch it off to
  see what the JSON API of a require-MFA organization does without it.
* Profile claims in the ID token: on, as Auth0 does. Off, the ID token carries no `email` and
  `email_verified`, and only `/userinfo` answers them, which OpenID Connect Core 1.0 §5.4
  allows an OP to do; the app must cope.

Both can be read and changed while the dev IdP runs (`GET`/`PATCH /__dev/tenant`, JSON only, so
a cross-site form cannot change them). State is in memory, like the faults: a test-time switch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from litestar import Request, Response, get, patch
from litestar.datastructures import State

from saas.devidp.models import User


@dataclass(slots=True)
class TenantConfig:
    connection_claim_action: bool = True
    email_in_id_token: bool = True
    methods_claim_action: bool = True

    def as_json(self) -> dict[str, bool]:
        return asdict(self)


def post_login_action_claims(tenant: TenantConfig, claim: str, user: User) -> dict[str, Any]:
    """What the README's Action adds to an ID token:
    `api.idToken.setCustomClaim(CLAIM, event.connection.name)`.

    `event.connection` is the connection of this authentication
    (https://auth0.com/docs/customize/actions/reference/post-login/post-login-event-object);
    the dev IdP links no accounts, so that is the one connection its user belongs to. Auth0 runs
    post-login Actions on refresh token exchanges too
    (https://auth0.com/docs/customize/actions/explore-triggers/signup-and-login-triggers/login-trigger),
    so every ID token gets it."""
    if not tenant.connection_claim_action:
        return {}
    return {claim: user.connection}


def post_login_access_token_claims(
    tenant: TenantConfig, claim: str, user: User, *, mfa: bool
) -> dict[str, Any]:
    """What the README's methods Action adds to an access token: the names of
    `event.authentication.methods`, when "mfa" is among them, with
    `api.accessToken.setCustomClaim(CLAIM, names)`.

    The first factor is named as Auth0 names it ("pwd" for a database connection's password,
    "federated" for an enterprise or social connection), and "mfa" follows a second factor
    (https://auth0.com/docs/customize/actions/reference/post-login/post-login-event-object).
    The Action runs after the challenge (`api.authentication.challengeWithAny`), so it sees
    the second factor of this very sign-in. A code issued silently, and a refresh token
    exchange, carry no second factor here, as `amr` is left out of those ID tokens."""
    if not tenant.methods_claim_action or not mfa:
        return {}
    first = "pwd" if user.password_hash is not None else "federated"
    return {claim: [first, "mfa"]}


def _tenant(state: State) -> TenantConfig:
    # Not saas.devidp.context.get_idp: the context imports this module for the type.
    tenant: TenantConfig = state.devidp.tenant
    return tenant


def _invalid(description: str, status_code: int = 400) -> Response[Any]:
    return Response(
        {"error": "invalid_request", "error_description": description}, status_code=status_code
    )


@get("/__dev/tenant")
async def read_tenant(state: State) -> dict[str, bool]:
    return _tenant(state).as_json()


@patch("/__dev/tenant", opt={"exclude_from_csrf": True}, status_code=200)
async def change_tenant(request: Request[Any, Any, Any], state: State) -> Response[Any]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return _invalid("Send Content-Type: application/json", 415)
    try:
        changes = await request.json()
    except Exception:
        changes = None
    if not isinstance(changes, dict):
        return _invalid("JSON object expected")
    tenant = _tenant(state)
    known = {f.name for f in fields(tenant)}
    for name, value in changes.items():
        if name not in known:
            return _invalid(f"unknown setting {name!r}; known: {sorted(known)}")
        if not isinstance(value, bool):
            return _invalid(f"{name} must be true or false")
    for name, value in changes.items():
        setattr(tenant, name, value)
    return Response(tenant.as_json())
