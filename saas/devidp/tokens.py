"""Minting and checking the JWTs the dev IdP issues (RS256, ``kid`` in the header)."""

from __future__ import annotations

from typing import Any

import jwt

from saas.devidp.context import ACCESS_TOKEN_TTL_SECONDS, ID_TOKEN_TTL_SECONDS, DevIdp
from saas.devidp.ids import iso8601
from saas.devidp.mfa_policy import MFA_POLICY
from saas.devidp.models import Organization, User
from saas.devidp.tenant import post_login_access_token_claims, post_login_action_claims


def sign(idp: DevIdp, claims: dict[str, Any], typ: str = "JWT") -> str:
    key = idp.keys.active
    # The key object, not its PEM: PyJWT would parse and check the PEM again on every token
    # (several milliseconds of CPU for a 2048-bit key), which is most of a sign-in's cost here.
    return jwt.encode(
        claims, key.private_key, algorithm="RS256", headers={"kid": key.kid, "typ": typ}
    )


def id_token(
    idp: DevIdp,
    *,
    user: User,
    client_id: str,
    scope: set[str],
    nonce: str | None,
    auth_time: float,
    sid: str,
    org: Organization | None,
    now: float,
    mfa: bool = False,
) -> str:
    claims: dict[str, Any] = {
        "iss": idp.issuer,
        "sub": user.user_id,
        "aud": client_id,
        "iat": int(now),
        "exp": int(now) + ID_TOKEN_TTL_SECONDS,
        "auth_time": int(auth_time),
        "sid": sid,
    }
    # Profile claims follow the requested scopes, as with Auth0.
    if "profile" in scope:
        claims.update(
            name=user.name,
            nickname=user.email.split("@", 1)[0],
            picture=user.picture,
            updated_at=iso8601(user.updated_at),
        )
    if "email" in scope and idp.tenant.email_in_id_token:
        claims.update(email=user.email, email_verified=user.email_verified)
    if nonce is not None:
        claims["nonce"] = nonce
    if org is not None:
        claims["org_id"] = org.id
        claims["org_name"] = org.name
    if mfa:
        # As Auth0 after a multi-factor challenge (saas.devidp.mfa).
        claims["amr"] = ["mfa"]
        claims["acr"] = MFA_POLICY
    claims.update(post_login_action_claims(idp.tenant, idp.settings.auth0_connection_claim, user))
    return sign(idp, claims)


def user_access_token(
    idp: DevIdp,
    *,
    user: User,
    client_id: str,
    audience: str,
    scope: str,
    permissions: list[str],
    org: Organization | None,
    now: float,
    mfa: bool = False,
) -> str:
    scopes = scope.split()
    # With an `openid` scope Auth0 adds its /userinfo endpoint as a second audience.
    aud: str | list[str] = [audience, idp.userinfo_url] if "openid" in scopes else audience
    claims: dict[str, Any] = {
        "iss": idp.issuer,
        "sub": user.user_id,
        "aud": aud,
        "iat": int(now),
        "exp": int(now) + ACCESS_TOKEN_TTL_SECONDS,
        "scope": scope,
        "azp": client_id,
        "permissions": permissions,
    }
    if org is not None:
        claims["org_id"] = org.id
    claims.update(
        post_login_access_token_claims(idp.tenant, idp.settings.auth0_amr_claim, user, mfa=mfa)
    )
    return sign(idp, claims)


def client_credentials_token(
    idp: DevIdp, *, client_id: str, audience: str, scope: str, now: float
) -> str:
    claims = {
        "iss": idp.issuer,
        "sub": f"{client_id}@clients",
        "aud": audience,
        "iat": int(now),
        "exp": int(now) + ACCESS_TOKEN_TTL_SECONDS,
        "scope": scope,
        "gty": "client-credentials",
        "azp": client_id,
    }
    return sign(idp, claims)


def verify(
    idp: DevIdp, token: str, *, audience: str | None, verify_exp: bool = True
) -> dict[str, Any]:
    """Verify a token we issued; raises ``jwt.InvalidTokenError``."""
    header = jwt.get_unverified_header(token)
    key = idp.keys.public_key(str(header.get("kid", "")))
    if key is None:
        raise jwt.InvalidTokenError("unknown kid")
    options: jwt.types.Options = {
        "require": ["exp", "iat", "iss", "sub"],
        "verify_exp": verify_exp,
        "verify_aud": audience is not None,
    }
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=["RS256"],
        issuer=idp.issuer,
        audience=audience,
        options=options,
        leeway=5,
    )
    return claims
