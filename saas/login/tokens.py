"""Verification of Auth0 ID tokens and access tokens with PyJWT.

RS256 only; the key comes from the issuer's JWKS by `kid`; exp, iat, iss, aud and sub are
required and must be JSON numbers; the issuer must match exactly; a small leeway absorbs clock
skew; an ID token issued more than a few minutes ago is refused.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from typing import Any

import jwt

from saas.login.jwks import JWKSCache, JWKSUnavailable

ALGORITHMS = ["RS256"]
LEEWAY_SECONDS = 60
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]
# RFC 7519 §2: a NumericDate is a JSON number. PyJWT passes these through int(), so "1999999999"
# (a string) would otherwise be accepted as a time.
NUMERIC_DATE_CLAIMS = ("exp", "iat", "nbf", "auth_time")
# An ID token is redeemed moments after it is issued (the code it came with lives for seconds
# at Auth0). One issued longer ago than this was kept somewhere, so it is refused as a replay
# risk (OpenID Connect Core §3.1.3.7, step 10: "iat ... can be used to reject tokens that were
# issued too far away from the current time").
ID_TOKEN_MAX_AGE_SECONDS = 300


class InvalidToken(Exception):
    """A token that must not be trusted. The message names the reason, never the token."""


def _header(token: str) -> dict[str, Any]:
    """The JOSE header, read only to choose the key. (PyJWT's get_unverified_header checks
    the whole token character by character first, which cost as much as a third of the
    signature check; jwt.decode below validates everything anyway.)"""
    encoded, dot, rest = token.partition(".")
    if not dot or rest.count(".") != 1 or len(encoded) > 2048:
        raise InvalidToken("malformed token")
    try:
        header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, binascii.Error) as error:
        raise InvalidToken("malformed token") from error
    if not isinstance(header, dict):
        raise InvalidToken("malformed token")
    return header


async def _decode(token: str, jwks: JWKSCache, *, issuer: str, audience: str) -> dict[str, Any]:
    header = _header(token)
    if header.get("alg") not in ALGORITHMS:
        # Refuse before any key lookup: `none` and HS256-with-the-public-key never get that far.
        raise InvalidToken(f"algorithm {header.get('alg')!r} is not allowed")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("token has no key id")
    try:
        key = await jwks.get_signing_key(kid)
    except JWKSUnavailable as error:
        raise InvalidToken("the issuer's signing keys are unavailable") from error
    if key is None:
        raise InvalidToken("unknown signing key")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=ALGORITHMS,
            audience=audience,
            issuer=issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": REQUIRED_CLAIMS, "verify_iat": True, "strict_aud": False},
        )
    except jwt.PyJWTError as error:
        raise InvalidToken(type(error).__name__) from error
    _require_numeric_dates(claims)
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise InvalidToken("token has no subject")
    return claims


def _require_numeric_dates(claims: dict[str, Any]) -> None:
    for name in NUMERIC_DATE_CLAIMS:
        value = claims.get(name)
        # bool is an int subclass in Python, but `true` is not a JSON number.
        if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise InvalidToken(f"claim {name!r} is not a NumericDate")


def _require_recently_issued(claims: dict[str, Any], now: float) -> None:
    if claims["iat"] < now - ID_TOKEN_MAX_AGE_SECONDS - LEEWAY_SECONDS:
        raise InvalidToken(f"ID token was issued more than {ID_TOKEN_MAX_AGE_SECONDS} s ago")


async def verify_id_token(
    token: str, jwks: JWKSCache, *, issuer: str, client_id: str, nonce: str
) -> dict[str, Any]:
    claims = await _decode(token, jwks, issuer=issuer, audience=client_id)
    _require_recently_issued(claims, time.time())
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise InvalidToken("ID token with several audiences must name us as azp")
    sent = nonce.encode()
    received = str(claims.get("nonce", "")).encode()
    if not nonce or not hmac.compare_digest(sent, received):
        raise InvalidToken("nonce mismatch")
    return claims


async def verify_access_token(
    token: str, jwks: JWKSCache, *, issuer: str, audience: str
) -> dict[str, Any]:
    return await _decode(token, jwks, issuer=issuer, audience=audience)
